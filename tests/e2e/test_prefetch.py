"""Claiming ahead (prefetch): only for jobs that finish faster than a claim; what waits in the
ready line is given back on a stop (attempt not counted), or cancelled if that was asked,
and never started twice."""

from __future__ import annotations

from typing import Any

import anyio

import aioqueue
from tests.support.worker_helpers import running_worker


async def _running(q: aioqueue.Queue) -> int:
    s = q.config.schema
    return int(await q.pool.fetchval(f"SELECT count(*) FROM \"{s}\".jobs WHERE state = 'running'"))


async def test_fast_jobs_are_claimed_ahead_and_given_back_on_stop(q: aioqueue.Queue) -> None:
    tasks = aioqueue.Tasks()
    gate = anyio.Event()

    @tasks.task("fast")
    async def fast(ctx: aioqueue.JobContext, payload: Any) -> None:
        return None

    @tasks.task("slow")
    async def slow(ctx: aioqueue.JobContext, payload: Any) -> None:
        await gate.wait()

    warm = await q.enqueue_many([{"kind": "fast"}] * 300)
    async with running_worker(q, tasks, concurrency=5) as (worker, rec):
        await rec.wait_for("completed", count=len(warm))  # fast jobs: claims are the slow part
        foreman = worker._foreman
        assert foreman is not None
        ahead = min(15, foreman._prefetch())  # a fast job costs less than a claim: several
        assert ahead >= 5, foreman._prefetch()
        slow_ids = [o.id for o in await q.enqueue_many([{"kind": "slow"}] * 20)]
        await rec.wait_for("started", count=5, timeout=10)
        with anyio.fail_after(10):
            while await _running(q) < 5 + ahead:  # 5 running, the rest claimed ahead  # noqa: ASYNC110
                await anyio.sleep(0.01)
        assert len(rec.of("started")) == len(warm) + 5  # the ahead ones did not start
        waiting = slow_ids[5 : 5 + ahead]
        cancelled = (await q.cancel(waiting[2])).id  # cancel one while it waits in line
        with anyio.fail_after(10):
            while foreman._ready and foreman._ready[2][1].reason is None:  # noqa: ASYNC110
                await anyio.sleep(0.01)
    # stopped (stop timeout 2 s): the 5 running are cancelled and released, the ahead released
    jobs = {j.id: j for j in await q.list_jobs(kind="slow", limit=100)}
    assert jobs[cancelled].state == "cancelled" and jobs[cancelled].started_at is not None
    for job_id in slow_ids:
        if job_id != cancelled:
            assert jobs[job_id].state == "pending", jobs[job_id]
            assert jobs[job_id].attempts == 0
    assert len(rec.of("started")) == len(warm) + 5


async def test_long_jobs_are_not_claimed_ahead(q: aioqueue.Queue) -> None:
    tasks = aioqueue.Tasks()

    @tasks.task("slow")
    async def slow(ctx: aioqueue.JobContext, payload: Any) -> None:
        await anyio.sleep(0.2)  # long next to a claim (about a millisecond)

    await q.enqueue_many([{"kind": "slow"}] * 20)
    async with running_worker(q, tasks, concurrency=5) as (worker, rec):
        foreman = worker._foreman
        assert foreman is not None
        waited = 0
        while len(rec.of("completed")) < 20:
            waited = max(waited, len(foreman._ready))
            await anyio.sleep(0.01)  # sampling the ready line while jobs run
        assert foreman._prefetch() == 0
    assert waited == 0
