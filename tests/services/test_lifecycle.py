"""Lifecycle: results and wait, retention, lineage, admin calls on every state."""

from __future__ import annotations

import datetime as dt
import time
from typing import Any

import anyio
import asyncpg
import pytest

import aioqueue
import aioqueue.testing
from aioqueue._maintenance.pruner import Pruner
from aioqueue._notifier import dedicated, from_pool
from aioqueue._waiter import Waiter
from tests.support.worker_helpers import FAST, running_worker


def _tasks() -> aioqueue.Tasks:
    tasks = aioqueue.Tasks()

    @tasks.task("echo")
    async def echo(ctx: aioqueue.JobContext, payload: Any) -> Any:
        return payload

    @tasks.task("gate")
    async def gate(ctx: aioqueue.JobContext, payload: Any) -> str:
        await ctx.state.wait()
        return "opened"

    return tasks


async def test_wait_returns_result_soon_after_completion(q: aioqueue.Queue) -> None:
    gate = anyio.Event()
    tasks = _tasks()
    out = await q.enqueue("gate")
    async with running_worker(q, tasks, state=gate) as (_, rec):
        await rec.wait_for("started", out.id)
        finished_at: list[float] = []

        async def waiter() -> aioqueue.Job:
            job = await q.wait(out.id, timeout=10)
            finished_at.append(time.monotonic())
            return job

        async with anyio.create_task_group() as tg:
            tg.start_soon(waiter)
            await anyio.wait_all_tasks_blocked()
            gate.set()
            completed = await rec.wait_for("completed", out.id)
            assert completed
            flushed = time.monotonic()
    job = await q.get_job(out.id)
    assert job.result == "opened"
    # woken by the notification, not by the 5 s re-check
    assert finished_at[0] - flushed < 1.0


async def test_only_finishing_a_waited_job_sends_the_finished_notification(
    q: aioqueue.Queue, conn: asyncpg.Connection
) -> None:
    """'f' wakes Queue.wait() callers; jobs nobody waits for finish without a NOTIFY (which
    would hold the database-wide notify lock through every completion's commit)."""
    heard: list[str] = []
    await conn.add_listener(q.config.channel, lambda *args: heard.append(str(args[3])))
    marked = anyio.Event()
    watch = q.queries.job_watch

    async def spy(db: Any, **kwargs: Any) -> bool:
        watched = await watch(db, **kwargs)
        if watched:
            marked.set()
        return watched

    q.queries.job_watch = spy  # type: ignore[method-assign]
    gate = anyio.Event()
    plain = await q.enqueue("echo", 1)
    waited = await q.enqueue("gate")
    async with running_worker(q, _tasks(), state=gate) as (_, rec):
        await rec.wait_for("completed", plain.id)
        await rec.wait_for("started", waited.id)
        await conn.fetchval("SELECT 1")  # the notifications sent so far have reached us
        assert "f" not in heard
        async with anyio.create_task_group() as tg:
            done: list[aioqueue.Job] = []

            async def waiter() -> None:
                done.append(await q.wait(waited.id, timeout=10))

            tg.start_soon(waiter)
            await marked.wait()
            gate.set()
    assert done[0].result == "opened"
    await conn.fetchval("SELECT 1")
    assert heard.count("f") == 1


async def test_waits_racing_the_completions_are_all_woken(q: aioqueue.Queue) -> None:
    """Marking a job and finishing it race (the row lock orders them): whichever comes second
    sees the first, so no wait is left for its re-check, here an hour away."""
    listen = dedicated(q.dsn, "test-waiter") if q.dsn else from_pool(q.pool)
    q._waiter = Waiter(q.pool, q.queries, q.config.channel, listen, recheck=3600)
    tasks = _tasks()

    @tasks.task("fail", max_attempts=1)
    async def fail(ctx: aioqueue.JobContext, payload: Any) -> None:
        raise RuntimeError("no")  # a failed job is written by job_finish_many, not the fast path

    outs = await q.enqueue_many(
        [{"kind": "echo" if i % 3 else "fail", "payload": i} for i in range(60)]
    )
    async with running_worker(q, tasks, concurrency=4):
        with anyio.fail_after(30):  # a lost wake-up would wait an hour
            async with anyio.create_task_group() as tg:
                for out in outs:
                    tg.start_soon(q.wait, out.id)
    states = [(await q.get_job(out.id)).state for out in outs]
    assert states == ["failed" if i % 3 == 0 else "completed" for i in range(60)]


async def test_wait_times_out_with_typed_error(q: aioqueue.Queue) -> None:
    out = await q.enqueue("nobody.handles.this")
    with pytest.raises(aioqueue.WaitTimeout):
        await q.wait(out.id, timeout=0.2)
    with pytest.raises(TimeoutError):  # WaitTimeout is a TimeoutError
        await q.wait(out.id, timeout=0.1)


async def test_wait_on_missing_job_raises_not_found(q: aioqueue.Queue) -> None:
    with pytest.raises(aioqueue.JobNotFound):
        await q.wait(987654321, timeout=1)


async def test_retention_deletes_exactly_what_is_due_in_batches(
    q: aioqueue.Queue, conn: asyncpg.Connection
) -> None:
    s = q.config.schema
    await conn.execute(
        f"""
        INSERT INTO "{s}".jobs (kind, state, finished_at)
        SELECT 'old', 'completed', now() - interval '2 hours' FROM generate_series(1, 2500);
        INSERT INTO "{s}".jobs (kind, state, finished_at)
        SELECT 'fresh', 'completed', now() - interval '10 minutes' FROM generate_series(1, 100);
        INSERT INTO "{s}".jobs (kind, state, finished_at)
        SELECT 'old-failed', 'failed', now() - interval '2 hours' FROM generate_series(1, 30);
        """
    )
    pruner = Pruner(
        q.pool,
        q.queries,
        interval=60,
        batch=1000,
        retention={"completed": 3600.0, "failed": None, "cancelled": 3600.0},
    )
    tasks = _tasks()
    outs = await q.enqueue_many([{"kind": "echo", "payload": i} for i in range(200)])
    async with anyio.create_task_group() as tg:  # claims keep running while pruning
        tg.start_soon(aioqueue.testing.drain, q, tasks)
        deleted = await pruner.prune()
    assert deleted == 2500
    counts = dict(await conn.fetch(f'SELECT kind, count(*) FROM "{s}".jobs GROUP BY kind'))
    assert counts["fresh"] == 100
    assert counts["old-failed"] == 30
    assert "old" not in counts
    for out in outs:
        assert (await q.get_job(out.id)).state is aioqueue.JobState.COMPLETED


async def test_get_job_of_pruned_job_raises_not_found(
    q: aioqueue.Queue, conn: asyncpg.Connection
) -> None:
    out = await q.enqueue("echo", 1)
    await aioqueue.testing.drain(q, _tasks())
    await conn.execute(
        f"UPDATE \"{q.config.schema}\".jobs SET finished_at = now() - interval '2 days'"
    )
    pruner = Pruner(q.pool, q.queries, interval=60, retention={"completed": 86400.0})
    assert await pruner.prune() == 1
    with pytest.raises(aioqueue.JobNotFound, match="pruned"):
        await q.get_job(out.id)


async def test_admin_calls_on_every_state(q: aioqueue.Queue, conn: asyncpg.Connection) -> None:
    s = q.config.schema
    pending = await q.enqueue("echo", 1)
    scheduled = await q.enqueue("echo", 2, delay=3600)
    done = await q.enqueue("echo", 3)
    await conn.execute(
        f"UPDATE \"{s}\".jobs SET state='completed', finished_at=now() WHERE id=$1", done.id
    )

    # cancel: waiting -> cancelled; finished -> clear error
    assert (await q.cancel(pending.id)).state is aioqueue.JobState.CANCELLED
    with pytest.raises(aioqueue.JobStateError, match="completed"):
        await q.cancel(done.id)
    with pytest.raises(aioqueue.JobStateError, match="cancelled"):
        await q.cancel(pending.id)
    with pytest.raises(aioqueue.JobNotFound):
        await q.cancel(10**12)

    # retry: only failed/cancelled, creates a new job with lineage
    again = await q.retry(pending.id)
    new = await q.get_job(again.id)
    assert new.rescheduled_from == pending.id
    assert new.state is aioqueue.JobState.PENDING
    assert new.payload == 1
    with pytest.raises(aioqueue.JobStateError, match="scheduled"):
        await q.retry(scheduled.id)

    # reschedule / complete / fail report exactly what changed
    soon = dt.datetime.now(dt.UTC) - dt.timedelta(seconds=1)
    assert await q.reschedule([scheduled.id, done.id], run_at=soon, priority=5) == [scheduled.id]
    job = await q.get_job(scheduled.id)
    assert job.state is aioqueue.JobState.PENDING
    assert job.priority == 5
    assert await q.complete([scheduled.id, done.id]) == [scheduled.id]
    assert await q.fail([again.id, done.id], "bad data") == [again.id]
    failed = await q.get_job(again.id)
    assert failed.state is aioqueue.JobState.FAILED
    assert failed.error is not None and failed.error.message == "bad data"


async def test_cancel_running_job_stops_its_handler(q: aioqueue.Queue) -> None:
    tasks = _tasks()
    out = await q.enqueue("gate", unique_key="k1")
    async with running_worker(q, tasks, state=anyio.Event(), heartbeat_interval=2.5) as (_, rec):
        await rec.wait_for("started", out.id)
        job = await q.cancel_by_key("gate", "k1")
        assert job.state is aioqueue.JobState.RUNNING  # asked to stop; its worker does it
        await rec.wait_for("cancelled", out.id, timeout=2)
    assert (await q.get_job(out.id)).state is aioqueue.JobState.CANCELLED
    with pytest.raises(aioqueue.JobNotFound):
        await q.cancel_by_key("gate", "k1")


async def test_list_jobs_filters_and_keyset_pagination(q: aioqueue.Queue) -> None:
    await q.enqueue_many([{"kind": "a", "payload": i} for i in range(25)])
    await q.enqueue_many([{"kind": "b", "payload": i, "queue_name": "qq"} for i in range(5)])
    seen: list[int] = []
    after = None
    while True:
        page = await q.list_jobs(kind="a", limit=10, after=after)
        if not page:
            break
        seen.extend(j.id for j in page)
        after = page[-1].id
    assert len(seen) == 25
    assert seen == sorted(seen, reverse=True)
    assert {j.kind for j in await q.list_jobs(queue_name="qq")} == {"b"}
    assert len(await q.list_jobs(state="pending", limit=100)) == 30
    with pytest.raises(aioqueue.ConfigurationError):
        await q.list_jobs(state="bogus")


async def test_stats_counts_and_throughput(q: aioqueue.Queue) -> None:
    await q.enqueue_many([{"kind": "echo", "payload": i} for i in range(10)])
    await q.enqueue("later", delay=3600)
    await aioqueue.testing.drain(q, _tasks(), **FAST)
    stats = await q.stats()
    assert stats.totals["completed"] == 10
    assert stats.totals["scheduled"] == 1
    assert stats.throughput == pytest.approx(10 / 60)
    assert {k.kind: k.counts for k in stats.kinds}["echo"] == {"completed": 10}
    assert 0 <= stats.notify_queue_usage < 0.5
