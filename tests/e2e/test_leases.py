"""Leases: healthy heartbeats keep a long job (A5); the rescuer and a completion racing on the
same job never both win (A6)."""

from __future__ import annotations

import asyncio
from typing import Any

import asyncpg
import pytest

import aioqueue
from aioqueue._consumer.outcome import Outcome
from tests.support.worker_helpers import running_worker

pytestmark = pytest.mark.anyio


async def test_heartbeats_keep_a_job_running_far_past_its_lease(q: aioqueue.Queue) -> None:
    tasks = aioqueue.Tasks()

    @tasks.task("long")
    async def long(ctx: aioqueue.JobContext, payload: Any) -> str:
        await asyncio.sleep(3)  # 6x the lease
        return "done"

    out = await q.enqueue("long")
    async with running_worker(q, tasks, lease=0.5, heartbeat_interval=0.1, rescue_interval=0.1) as (
        worker,
        rec,
    ):
        await rec.wait_for("completed", out.id, timeout=15)
        assert worker._heartbeat is not None and worker._heartbeat.beats >= 10
    job = await q.get_job(out.id)
    assert job.attempts == 1  # never rescued
    assert not rec.of("rescued") and not rec.of("lease_lost")


async def test_rescuer_and_completion_race_never_both_win(q: aioqueue.Queue, dsn: str) -> None:
    s = q.config.schema
    c1 = await asyncpg.connect(dsn)
    c2 = await asyncpg.connect(dsn)
    try:
        outs = await q.enqueue_many([{"kind": "race", "max_attempts": 5} for _ in range(200)])
        rows = await q.queries.job_claim(
            c1,
            kinds=["race"],
            default_max_attempts=[5],
            forbidden_flags=[],
            batch=200,
            worker_id="w",
            lease=30.0,
        )
        tokens = {r["id"]: r["lease_token"] for r in rows}
        await c1.execute(f"UPDATE \"{s}\".jobs SET lease_expires_at = now() - interval '1 s'")
        completed: set[int] = set()
        rescued: set[int] = set()
        for out in outs:  # complete each job while a rescue runs at the same moment
            finish = q.queries.job_finish_many(
                c1,
                outcomes=[
                    Outcome(
                        id=out.id,
                        lease_token=tokens[out.id],
                        kind="race",
                        attempt=1,
                        state="completed",
                        result='"ok"',
                    )
                ],
            )
            rescue = q.queries.job_rescue_expired(c2, limit=1)
            accepted, saved = await asyncio.gather(finish, rescue)
            completed.update(r["id"] for r in accepted)
            rescued.update(r["id"] for r in saved)
        rescued.update(r["id"] for r in await q.queries.job_rescue_expired(c2, limit=1000))
        assert not completed & rescued  # never both
        assert completed | rescued == {o.id for o in outs}  # and never neither
        for job_id in completed:
            job = await q.get_job(job_id)
            assert job.state is aioqueue.JobState.COMPLETED and job.result == "ok"
            assert job.error is None  # no rescue entry added to a completed job
        for job_id in rescued:
            job = await q.get_job(job_id)
            assert job.state is aioqueue.JobState.SCHEDULED and job.result is None
    finally:
        await c1.close()
        await c2.close()


async def test_lease_tokens_carry_random_bits_above_the_transaction_id(
    q: aioqueue.Queue, conn: asyncpg.Connection
) -> None:
    """Claims commit asynchronously: after a crash a lost claim's transaction id can be handed
    out again. The token's random high bits keep the two claims apart."""
    await q.enqueue_many([{"kind": "k"}] * 3)
    tokens = []
    for _ in range(3):
        async with conn.transaction():
            (row,) = await q.queries.job_claim(
                conn,
                kinds=["k"],
                default_max_attempts=[25],
                forbidden_flags=[],
                batch=1,
                worker_id="w",
                lease=30.0,
            )
            xid = await conn.fetchval("SELECT pg_current_xact_id()::text::bigint")
        tokens.append(row["lease_token"])
        assert row["lease_token"] & 0xFFFFFFFF == xid & 0xFFFFFFFF
    assert len({t >> 32 for t in tokens}) > 1  # random: three equal draws have odds 2^-62
