"""D4: a listener stuck inside a transaction fills PostgreSQL's notification queue. aioqueue
stops notifying above 50 % usage, so producers' commits never fail; workers fall back to
polling; `stats()` / `aioqueue status` report the usage."""

from __future__ import annotations

import os
from pathlib import Path

import anyio
import asyncpg
import pytest

import aioqueue
from aioqueue._db import embedded

pytestmark = [pytest.mark.anyio, pytest.mark.chaos]


@pytest.fixture
async def small_notify_queue(tmp_path: Path) -> str:  # type: ignore[misc]
    if os.environ.get("AIOQUEUE_TEST_DSN"):
        pytest.skip("needs its own embedded server with a small notification queue")
    data = tmp_path / "pg"
    await anyio.to_thread.run_sync(embedded.ensure_server, data)
    conf = anyio.Path(data / "postgresql.conf")  # PostgreSQL 17+: 64 pages = 512 kB of queue
    await conf.write_text(await conf.read_text() + "max_notify_queue_pages = 64\n")
    dsn = await anyio.to_thread.run_sync(embedded.restart_server, data)
    try:
        yield dsn
    finally:
        await anyio.to_thread.run_sync(embedded.stop_server, data)


async def test_stuck_listener_never_fails_producers(small_notify_queue: str) -> None:
    dsn = small_notify_queue
    q = await aioqueue.Queue.connect(dsn, schema="pressure")
    stuck = await asyncpg.connect(dsn)
    try:
        await stuck.execute(f"LISTEN {q.config.channel}")
        await stuck.execute("BEGIN")  # idle in transaction: it never consumes notifications
        await stuck.execute("SELECT 1")
        usage = 0.0
        sent = 0
        while usage < 0.5 and sent < 60_000:
            for _ in range(500):
                await q.enqueue("fill", {"n": sent})  # separate transactions: no folding
                sent += 1
            usage = (await q.stats()).notify_queue_usage
        assert usage >= 0.5, f"queue only {usage:.0%} full after {sent} enqueues"
        for _ in range(2000):  # keep going well past the threshold: nothing may fail
            await q.enqueue("fill", {"n": sent})
            sent += 1
        stats = await q.stats()
        assert 0.5 <= stats.notify_queue_usage < 0.6  # aioqueue stopped adding to it
        # a healthy worker still finds the jobs, by polling
        tasks = aioqueue.Tasks()

        @tasks.task("fill")
        async def fill(ctx: aioqueue.JobContext, payload: dict[str, int]) -> None:
            return None

        await aioqueue.Worker(q, tasks, concurrency=50, poll_interval=0.2).run(until_empty=True)
        assert (await q.stats()).totals["completed"] == sent
        await stuck.execute("ROLLBACK")  # the listener wakes up and drains the queue
        with anyio.fail_after(10):
            while (await q.stats()).notify_queue_usage > 0:
                await stuck.fetchval("SELECT 1")
    finally:
        await stuck.close()
        await q.close()
