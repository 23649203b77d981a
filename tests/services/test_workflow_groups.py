"""Groups with a completion callback (issue 21): counts, sealing, wait_group, and the callback
enqueued exactly once by 10,000 members settled across 3 worker processes, one SIGKILLed."""

from __future__ import annotations

import asyncio
import signal
from typing import Any

import anyio
import pytest

import aioqueue
from aioqueue import JobSpec, JobState
from aioqueue._maintenance.pruner import Pruner
from tests.support.processes import start_worker, until
from tests.support.worker_helpers import running_worker


async def test_callback_gets_outcome_counts(q: aioqueue.Queue) -> None:
    tasks = aioqueue.Tasks()
    seen: list[aioqueue.GroupOutcome | None] = []

    @tasks.task("item", max_attempts=1)
    async def item(ctx: aioqueue.JobContext, payload: dict[str, Any]) -> None:
        if payload["i"] == 2:
            raise aioqueue.Fail("no")

    @tasks.task("done")
    async def done(ctx: aioqueue.JobContext, payload: dict[str, Any]) -> str:
        seen.append(ctx.group)
        return payload["note"]

    group = await q.enqueue_group(
        [JobSpec(kind="item", payload={"i": i}) for i in range(4)],
        on_complete=JobSpec(kind="done", payload={"note": "all in"}),
    )
    assert group.total == 4 and group.sealed and len(group.member_ids) == 4
    await q.cancel(group.member_ids[3])
    async with running_worker(q, tasks):
        finished = await q.wait_group(group.id, timeout=20)
        assert finished.callback_id is not None
        callback = await q.wait(finished.callback_id, timeout=20)
    assert callback.result == "all in"
    assert (finished.completed, finished.failed, finished.cancelled) == (2, 1, 1)
    assert seen == [aioqueue.GroupOutcome(id=group.id, total=4, completed=2, failed=1, cancelled=1)]


async def test_open_group_takes_members_until_sealed(q: aioqueue.Queue) -> None:
    group = await q.enqueue_group([JobSpec(kind="a")], on_complete=JobSpec(kind="cb"), seal=False)
    await q.complete(group.member_ids)
    assert (await q.get_group(group.id)).finished_at is None  # not sealed: more may come
    (extra,) = await q.add_to_group(group.id, [JobSpec(kind="a")])
    await q.complete([extra.id])
    sealed = await q.seal_group(group.id)  # every member finished: the callback is due now
    assert sealed.finished_at is not None and sealed.callback_id is not None
    assert (await q.get_job(sealed.callback_id)).state == JobState.PENDING
    assert (sealed.total, sealed.completed) == (2, 2)
    with pytest.raises(aioqueue.InvalidJobError, match="sealed"):
        await q.add_to_group(group.id, [JobSpec(kind="a")])
    with pytest.raises(aioqueue.GroupNotFound):
        await q.get_group(10**12)


async def test_empty_group_calls_back_at_once(q: aioqueue.Queue) -> None:
    group = await q.enqueue_group([], on_complete=JobSpec(kind="cb"))
    assert group.finished_at is not None and group.callback_id is not None


async def test_group_in_rolled_back_tx_leaves_nothing(q: aioqueue.Queue) -> None:
    s = q.config.schema
    async with q.pool.acquire() as conn:
        tx = conn.transaction()
        await tx.start()
        await q.enqueue_group([JobSpec(kind="a")] * 3, on_complete=JobSpec(kind="cb"), tx=conn)
        await tx.rollback()
    assert await q.pool.fetchval(f'SELECT count(*) FROM "{s}".job_groups') == 0
    assert await q.pool.fetchval(f'SELECT count(*) FROM "{s}".jobs') == 0


async def test_finished_groups_are_forgotten_after_every_retention(q: aioqueue.Queue) -> None:
    """Finished groups go once the longest retention has passed; open and unfinished groups,
    and every group while one state is kept forever, stay."""
    done = await q.enqueue_group([JobSpec(kind="a")])
    await q.complete(done.member_ids)
    unfinished = await q.enqueue_group([JobSpec(kind="a")])
    still_open = await q.enqueue_group([], seal=False)
    assert (await q.get_group(done.id)).finished_at is not None

    def pruner(failed: float | None) -> Pruner:
        retention = {"completed": 0.0, "failed": failed, "cancelled": 0.0}
        return Pruner(q.pool, q.queries, interval=60, retention=retention, batch=1)

    assert await pruner(None).prune_groups() == 0  # failed jobs kept forever: groups too
    assert await pruner(3600.0).prune_groups() == 0  # within the longest retention
    assert await pruner(0.0).prune_groups() == 1  # batches of one: the loop ends on a short one
    with pytest.raises(aioqueue.GroupNotFound):
        await q.get_group(done.id)
    assert (await q.get_group(unfinished.id)).finished_at is None
    assert not (await q.get_group(still_open.id)).sealed


@pytest.mark.chaos
async def test_10k_group_callback_once_across_3_processes_one_killed(
    q: aioqueue.Queue, dsn: str
) -> None:
    s = q.config.schema
    await q.pool.execute(
        f'CREATE TABLE "{s}".group_ledger (job_id bigint, group_id bigint, total int, '
        "completed int, failed int, cancelled int, pid int)"
    )
    n = 10_000
    group = await q.enqueue_group(
        [JobSpec(kind="member", payload={"i": i, "fail": i % 100 == 0}) for i in range(n)],
        on_complete=JobSpec(kind="group_done"),
    )
    procs = [
        await start_worker(
            dsn, s, tasks="tests.support.workflow_tasks:tasks", stderr=asyncio.subprocess.DEVNULL
        )
        for _ in range(3)
    ]
    try:

        async def a_third_done() -> bool:
            g = await q.get_group(group.id)
            return g.done >= n // 3

        await until(a_third_done, timeout=120)
        procs[0].send_signal(signal.SIGKILL)  # with jobs in hand: the rescuer settles them
        await procs[0].wait()
        finished = await q.wait_group(group.id, timeout=180)
        assert finished.callback_id is not None
        callback = await q.wait(finished.callback_id, timeout=60)
        assert callback.state == JobState.COMPLETED
    finally:
        for p in procs:
            if p.returncode is None:
                p.send_signal(signal.SIGTERM)
        with anyio.CancelScope(shield=True):
            for p in procs:
                await p.wait()
    assert (finished.total, finished.done, finished.failed) == (n, n, n // 100)
    callbacks = await q.pool.fetch(f"SELECT id FROM \"{s}\".jobs WHERE kind = 'group_done'")
    assert [r["id"] for r in callbacks] == [finished.callback_id]  # enqueued exactly once
    rows = await q.pool.fetch(f'SELECT * FROM "{s}".group_ledger')
    assert len(rows) == 1
    assert (rows[0]["total"], rows[0]["completed"], rows[0]["failed"]) == (
        n,
        n - n // 100,
        n // 100,
    )
