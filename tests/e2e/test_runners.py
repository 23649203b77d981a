"""Runners: one task per busy slot runs job after job. Jobs must not notice: each handler has
its own context, a cancelled job leaves nothing behind for the next one on the same runner,
and there are never more runners than the concurrency."""

from __future__ import annotations

import asyncio
import contextvars
from typing import Any

import anyio

import aioqueue
from tests.support.worker_helpers import FAST, running_worker

seen: contextvars.ContextVar[str] = contextvars.ContextVar("seen", default="unset")


async def test_a_handler_never_sees_context_variables_set_by_an_earlier_job(
    q: aioqueue.Queue,
) -> None:
    tasks = aioqueue.Tasks()
    before: list[str] = []

    @tasks.task("ctx")
    async def ctx_job(ctx: aioqueue.JobContext, payload: int) -> None:
        before.append(seen.get())
        seen.set(f"job {payload}")
        await asyncio.sleep(0)  # the value survives the handler's own awaits
        assert seen.get() == f"job {payload}"

    await q.enqueue_many([{"kind": "ctx", "payload": n} for n in range(20)])
    await aioqueue.Worker(q, tasks, concurrency=1, **FAST).run(until_empty=True)
    assert before == ["unset"] * 20


async def test_a_cancelled_job_leaves_its_runner_clean_for_the_next(q: aioqueue.Queue) -> None:
    """concurrency=1: one runner runs all three. After the first is cancelled while running,
    the second runs to the end under its own timeout, and the third still times out."""
    tasks = aioqueue.Tasks()
    gate = anyio.Event()

    @tasks.task("blocked")
    async def blocked(ctx: aioqueue.JobContext, payload: Any) -> None:
        gate.set()
        await anyio.sleep(60)

    @tasks.task("quick", timeout=5)
    async def quick(ctx: aioqueue.JobContext, payload: Any) -> str:
        await asyncio.sleep(0.05)
        return "done"

    @tasks.task("slow", timeout=0.2, max_attempts=1)
    async def slow(ctx: aioqueue.JobContext, payload: Any) -> None:
        await asyncio.sleep(30)

    first = await q.enqueue("blocked")
    async with running_worker(q, tasks, concurrency=1) as (worker, rec):
        with anyio.fail_after(10):
            await gate.wait()
        second = await q.enqueue("quick")
        third = await q.enqueue("slow", priority=-1)
        await q.cancel(first.id)
        await rec.wait_for("failed", third.id)
        assert worker._foreman is not None and len(worker._foreman.tasks) == 1
    assert (await q.get_job(first.id)).state is aioqueue.JobState.CANCELLED
    done = await q.get_job(second.id)
    assert done.state is aioqueue.JobState.COMPLETED and done.result == "done"
    timed_out = await q.get_job(third.id)
    assert timed_out.state is aioqueue.JobState.FAILED
    assert timed_out.error is not None and "timed out" in timed_out.error.message


async def test_runners_never_outnumber_the_concurrency(q: aioqueue.Queue) -> None:
    tasks = aioqueue.Tasks()
    most = 0
    worker: aioqueue.Worker | None = None

    @tasks.task("n")
    async def n(ctx: aioqueue.JobContext, payload: int) -> None:
        nonlocal most
        assert worker is not None and worker._foreman is not None
        most = max(most, len(worker._foreman.tasks))
        if payload % 3 == 0:
            await asyncio.sleep(0.001)

    await q.enqueue_many([{"kind": "n", "payload": i} for i in range(600)])
    worker = aioqueue.Worker(q, tasks, concurrency=7, **FAST)
    await worker.run(until_empty=True)
    assert 1 <= most <= 7
    assert worker._foreman is not None and not worker._foreman.tasks  # all ended at the stop
    assert (await q.stats()).totals.get("completed") == 600
