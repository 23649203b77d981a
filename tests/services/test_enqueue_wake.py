"""Waking workers from concurrent enqueues: a lone enqueue notifies inside its INSERT, concurrent
ones after their commits through one coalesced NOTIFY in flight (so their commits are not
serialised by PostgreSQL's notify lock). Either way no job waits for a poll."""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

import anyio
import asyncpg

import aioqueue
from aioqueue.config import channel_for
from tests.support.worker_helpers import running_worker


async def test_concurrent_enqueues_wake_an_idle_worker_without_a_poll(q: aioqueue.Queue) -> None:
    tasks = aioqueue.Tasks()
    seen: set[int] = set()
    all_started = anyio.Event()

    @tasks.task("ping")
    async def ping(ctx: aioqueue.JobContext, payload: Any) -> None:
        seen.add(ctx.job.id)
        if len(seen) == 200:
            all_started.set()

    async with running_worker(q, tasks, poll_interval=60):
        for _ in range(4):  # bursts: the last job of each burst must wake the worker too
            outs = await asyncio.gather(*(q.enqueue("ping", {"i": i}) for i in range(50)))
            with anyio.fail_after(10):  # a 60 s poll could never make it: only NOTIFY can
                for out in outs:
                    await q.wait(out.id)
        await all_started.wait()


async def test_concurrent_enqueues_send_fewer_notifications_than_jobs(
    q: aioqueue.Queue, dsn: str
) -> None:
    listener = await asyncpg.connect(dsn)
    got: list[str] = []
    await listener.add_listener(channel_for(q.config.schema), lambda *a: got.append(a[3]))
    try:
        await asyncio.gather(*(q.enqueue("k", {"i": i}) for i in range(100)))
        await q._waker.close()  # the last wake-up is sent
        await listener.execute("SELECT 1")  # notifications arrive before this reply
        assert 1 <= len(got) < 100
        assert set(got) == {""}  # opaque wake hints only
    finally:
        await listener.close()


async def test_a_cancelled_enqueue_leaves_the_queue_usable_and_nothing_half_written(
    q: aioqueue.Queue, conn: asyncpg.Connection
) -> None:
    s = q.config.schema
    await q.enqueue("k")  # the hot connection is in use from here
    blocker = await asyncpg.connect(q.dsn)  # holds a lock the next INSERT must wait for
    await blocker.execute("BEGIN")
    await blocker.execute(f'LOCK TABLE "{s}".jobs IN SHARE MODE')
    slow = asyncio.create_task(q.enqueue("k", {"cancelled": True}))
    with anyio.fail_after(10):
        while not await conn.fetchval(  # noqa: ASYNC110 - the INSERT waits on the server
            "SELECT count(*) FROM pg_locks WHERE NOT granted AND relation = $1::regclass",
            f'"{s}".jobs',
        ):
            await asyncio.sleep(0.01)
    slow.cancel()
    await blocker.execute("ROLLBACK")
    await blocker.close()
    with contextlib.suppress(asyncio.CancelledError):
        await slow
    again = await q.enqueue("k", {"after": True})  # works: the connection was replaced
    payloads = [j.payload for j in await q.list_jobs(kind="k")]
    assert {"after": True} in payloads and (await q.get_job(again.id)).state == "pending"
    assert payloads.count({"cancelled": True}) <= 1  # committed whole or not at all


async def test_a_serial_queue_runs_its_next_job_without_waiting_for_a_poll(
    q: aioqueue.Queue,
) -> None:
    tasks = aioqueue.Tasks()
    order: list[int] = []

    @tasks.task("step")
    async def step(ctx: aioqueue.JobContext, payload: Any) -> None:
        order.append(payload["n"])

    outs = await q.enqueue_many(
        [{"kind": "step", "payload": {"n": n}, "queue_name": "user:1"} for n in range(10)]
    )
    async with running_worker(q, tasks, poll_interval=60):
        with anyio.fail_after(10):  # ten jobs one after another: a poll each would take 600 s
            await q.wait(outs[-1].id)
    assert order == list(range(10))
