"""Worker behaviour end to end against real PostgreSQL, in-process, under uvloop and asyncio."""

from __future__ import annotations

import asyncio
import enum
import logging
from typing import Any, Literal

import anyio
import msgspec
import pytest

import aioqueue
from aioqueue._consumer.outcome import Outcome
from tests.support.worker_helpers import FAST, Recorder, running_worker


@pytest.fixture(params=[pytest.param(("asyncio", {"use_uvloop": True}), id="uvloop"), "asyncio"])
def anyio_backend(request: pytest.FixtureRequest) -> Any:
    return request.param


pytestmark = pytest.mark.anyio


class Email(msgspec.Struct):
    to: str


async def test_runs_jobs_and_stores_results(q: aioqueue.Queue) -> None:
    tasks = aioqueue.Tasks()

    @tasks.task("add")
    async def add(ctx: aioqueue.JobContext, payload: dict[str, int]) -> int:
        return payload["a"] + payload["b"]

    outs = await q.enqueue_many([{"kind": "add", "payload": {"a": i, "b": 1}} for i in range(20)])
    worker = aioqueue.Worker(q, tasks, **FAST)
    await worker.run(until_empty=True)
    for i, out in enumerate(outs):
        job = await q.get_job(out.id)
        assert job.state is aioqueue.JobState.COMPLETED
        assert job.result == i + 1
        assert job.attempts == 1
        assert job.max_attempts == 25
        assert job.finished_at is not None


async def test_idle_worker_is_woken_by_notification(q: aioqueue.Queue) -> None:
    tasks = aioqueue.Tasks()
    started = anyio.Event()

    @tasks.task("ping")
    async def ping(ctx: aioqueue.JobContext, payload: Any) -> None:
        started.set()

    async with running_worker(q, tasks, poll_interval=60):
        await q.enqueue("ping")
        with anyio.fail_after(5):  # a 60 s poll could never make it: only NOTIFY can
            await started.wait()


async def test_delayed_job_runs_when_due_via_timer(q: aioqueue.Queue) -> None:
    tasks = aioqueue.Tasks()
    ran = anyio.Event()

    @tasks.task("later")
    async def later(ctx: aioqueue.JobContext, payload: Any) -> None:
        ran.set()

    async with running_worker(q, tasks, poll_interval=60) as (_, _rec):
        out = await q.enqueue("later", delay=0.5)
        assert (await q.get_job(out.id)).state is aioqueue.JobState.SCHEDULED
        with anyio.fail_after(5):
            await ran.wait()


async def test_retry_with_fixed_delay_then_success(q: aioqueue.Queue) -> None:
    tasks = aioqueue.Tasks()

    @tasks.task("flaky", retry_delay=0)
    async def flaky(ctx: aioqueue.JobContext, payload: Any) -> str:
        if ctx.job.attempts < 3:
            raise ConnectionError("try again")
        return "ok"

    out = await q.enqueue("flaky")
    async with running_worker(q, tasks) as (_, rec):
        await rec.wait_for("completed", out.id)
    job = await q.get_job(out.id)
    assert job.attempts == 3
    assert job.result == "ok"
    assert len(rec.of("retried", out.id)) == 2
    assert job.error is not None
    assert job.error.message == "try again"


async def test_exhausted_attempts_fail_with_traceback(q: aioqueue.Queue) -> None:
    tasks = aioqueue.Tasks()

    @tasks.task("boom", max_attempts=2, retry_delay=lambda attempts: 0.0)
    async def boom(ctx: aioqueue.JobContext, payload: Any) -> None:
        raise ValueError("broken")

    out = await q.enqueue("boom")
    async with running_worker(q, tasks) as (_, rec):
        await rec.wait_for("failed", out.id)
    job = await q.get_job(out.id)
    assert job.state is aioqueue.JobState.FAILED
    assert job.attempts == 2
    assert job.error is not None
    assert job.error.type == "ValueError"
    assert "raise ValueError" in job.error.traceback


async def test_default_backoff_schedules_retry(q: aioqueue.Queue) -> None:
    tasks = aioqueue.Tasks()

    @tasks.task("once")
    async def once(ctx: aioqueue.JobContext, payload: Any) -> None:
        raise RuntimeError("x")

    out = await q.enqueue("once", max_attempts=5)
    async with running_worker(q, tasks) as (_, rec):
        await rec.wait_for("retried", out.id)
    job = await q.get_job(out.id)
    assert job.state is aioqueue.JobState.SCHEDULED
    assert job.started_at is not None
    delay = (job.run_at - job.started_at).total_seconds()
    assert 2.0 < delay < 3.5  # exp(1) s +-10 % jitter


async def test_struct_validation_failure_is_permanent(q: aioqueue.Queue) -> None:
    tasks = aioqueue.Tasks()

    @tasks.task("email")
    async def email(ctx: aioqueue.JobContext, payload: Email) -> str:
        return payload.to

    good = await q.enqueue("email", {"to": "a@b.com"})
    bad = await q.enqueue("email", {"to": 12345, "secret": "SENTINEL-XYZ"}, max_attempts=5)
    async with running_worker(q, tasks) as (_, rec):
        await rec.wait_for("failed", bad.id)
        await rec.wait_for("completed", good.id)
    job = await q.get_job(bad.id)
    assert job.state is aioqueue.JobState.FAILED
    assert job.attempts == 1
    assert job.error is not None
    assert "$.to" in job.error.message
    assert "SENTINEL-XYZ" not in job.error.message
    assert "SENTINEL-XYZ" not in job.error.traceback
    assert (await q.get_job(good.id)).result == "a@b.com"


class Level(enum.Enum):
    LOW = "low"


class Contact(msgspec.Struct):
    channel: Literal["email", "sms"]
    level: Level


async def test_enum_and_literal_mismatches_never_store_the_value(
    q: aioqueue.Queue, caplog: pytest.LogCaptureFixture
) -> None:
    tasks = aioqueue.Tasks()

    @tasks.task("contact")
    async def contact(ctx: aioqueue.JobContext, payload: Contact) -> None:
        return None

    bad_literal = await q.enqueue("contact", {"channel": "SENTINEL-LIT", "level": "low"})
    bad_enum = await q.enqueue("contact", {"channel": "sms", "level": "SENTINEL-ENUM"})
    with caplog.at_level(logging.DEBUG):
        async with running_worker(q, tasks) as (_, rec):
            await rec.wait_for("failed", bad_literal.id)
            await rec.wait_for("failed", bad_enum.id)
    for out, path in ((bad_literal, "$.channel"), (bad_enum, "$.level")):
        error = (await q.get_job(out.id)).error
        assert error is not None and path in error.message
        assert "SENTINEL" not in error.message + error.traceback
    assert "SENTINEL" not in caplog.text


async def test_timeout_cancels_handler_and_fails_attempt(q: aioqueue.Queue) -> None:
    tasks = aioqueue.Tasks()
    cancelled = anyio.Event()

    @tasks.task("slow", timeout=0.2, max_attempts=1)
    async def slow(ctx: aioqueue.JobContext, payload: Any) -> None:
        try:
            await anyio.sleep(30)
        except BaseException:
            cancelled.set()
            raise

    out = await q.enqueue("slow")
    async with running_worker(q, tasks) as (_, rec):
        await rec.wait_for("failed", out.id)
    assert cancelled.is_set()
    job = await q.get_job(out.id)
    assert job.error is not None
    assert "timed out after 0.2 s" in job.error.message


async def test_batch_job_partial_failure_retries_only_failed_items(q: aioqueue.Queue) -> None:
    tasks = aioqueue.Tasks()
    seen: list[list[int]] = []

    @tasks.task("batch", retry_delay=0)
    async def batch(ctx: aioqueue.JobContext, payload: list[dict[str, int]]) -> list[Any]:
        seen.append([item["n"] for item in payload])
        return [
            ValueError(f"odd {item['n']}") if item["n"] % 2 and ctx.job.attempts == 1 else item["n"]
            for item in payload
        ]

    out = await q.enqueue("batch", [{"n": n} for n in range(5)])
    async with running_worker(q, tasks) as (_, rec):
        await rec.wait_for("completed", out.id)
    assert seen == [[0, 1, 2, 3, 4], [1, 3]]
    job = await q.get_job(out.id)
    assert job.payload == [{"n": 1}, {"n": 3}]
    assert job.result == [1, 3]


async def test_forbidden_flags_skip_jobs(q: aioqueue.Queue) -> None:
    tasks = aioqueue.Tasks()

    @tasks.task("call")
    async def call(ctx: aioqueue.JobContext, payload: Any) -> None:
        return None

    blocked = await q.enqueue("call", flags=["api:stripe"])
    free = await q.enqueue("call", flags=["api:other"])
    await aioqueue.Worker(q, tasks, forbidden_flags=["api:stripe"], **FAST).run(until_empty=True)
    assert (await q.get_job(blocked.id)).state is aioqueue.JobState.PENDING
    assert (await q.get_job(free.id)).state is aioqueue.JobState.COMPLETED

    calls = 0

    async def forbidden() -> list[str]:
        nonlocal calls
        calls += 1
        return []

    await aioqueue.Worker(q, tasks, forbidden_flags=forbidden, **FAST).run(until_empty=True)
    assert calls >= 1
    assert (await q.get_job(blocked.id)).state is aioqueue.JobState.COMPLETED


async def test_worker_claims_only_its_kinds(q: aioqueue.Queue) -> None:
    tasks = aioqueue.Tasks()

    @tasks.task("mine")
    async def mine(ctx: aioqueue.JobContext, payload: Any) -> None:
        return None

    other = await q.enqueue("no.such.kind")
    await aioqueue.Worker(q, tasks, **FAST).run(until_empty=True)
    job = await q.get_job(other.id)
    assert job.state is aioqueue.JobState.PENDING
    assert job.attempts == 0


async def test_priority_higher_runs_first(q: aioqueue.Queue) -> None:
    tasks = aioqueue.Tasks()
    order: list[int] = []

    @tasks.task("p")
    async def p(ctx: aioqueue.JobContext, payload: int) -> None:
        order.append(payload)

    await q.enqueue_many([{"kind": "p", "payload": n, "priority": n} for n in (0, 5, -3, 10, 5)])
    await aioqueue.Worker(q, tasks, concurrency=1, **FAST).run(until_empty=True)
    assert order == [10, 5, 5, 0, -3]


async def test_serial_queue_never_overlaps_across_three_workers(q: aioqueue.Queue) -> None:
    tasks = aioqueue.Tasks()
    active = 0
    max_active = 0
    order: list[int] = []

    @tasks.task("serial")
    async def serial(ctx: aioqueue.JobContext, payload: int) -> None:
        nonlocal active, max_active
        active += 1
        max_active = max(max_active, active)
        order.append(payload)
        await anyio.sleep(0.005)
        active -= 1

    @tasks.task("free")
    async def free(ctx: aioqueue.JobContext, payload: int) -> None:
        return None

    n = 30
    await q.enqueue_many(
        [{"kind": "serial", "payload": i, "queue_name": "user:42"} for i in range(n)]
        + [{"kind": "free", "payload": i} for i in range(n)]
    )
    rec = Recorder()  # shared by the three workers
    async with anyio.create_task_group() as tg:
        workers = [aioqueue.Worker(q, tasks, concurrency=10, hooks=[rec], **FAST) for _ in "abc"]
        for w in workers:
            tg.start_soon(w.run)
        await rec.wait_for("completed", count=2 * n, timeout=30)
        for w in workers:
            await w.stop()
    assert max_active == 1
    assert order == list(range(n))


async def test_graceful_stop_releases_running_jobs_with_attempt_given_back(
    q: aioqueue.Queue,
) -> None:
    tasks = aioqueue.Tasks()

    @tasks.task("long")
    async def long(ctx: aioqueue.JobContext, payload: Any) -> None:
        await anyio.sleep(60)

    outs = await q.enqueue_many([{"kind": "long"} for _ in range(5)])
    rec = Recorder()
    worker = aioqueue.Worker(q, tasks, hooks=[rec], **FAST)
    async with anyio.create_task_group() as tg:
        tg.start_soon(worker.run)
        await rec.wait_for("started", count=5)
        with anyio.fail_after(5):
            await worker.stop(timeout=0.2)
    for out in outs:
        job = await q.get_job(out.id)
        assert job.state is aioqueue.JobState.PENDING
        assert job.attempts == 0
        assert job.locked_by is None
    assert len(rec.of("released")) == 5


async def test_stop_waits_for_running_jobs_within_timeout(q: aioqueue.Queue) -> None:
    tasks = aioqueue.Tasks()
    release = anyio.Event()

    @tasks.task("short")
    async def short(ctx: aioqueue.JobContext, payload: Any) -> str:
        await release.wait()
        return "done"

    out = await q.enqueue("short")
    rec = Recorder()
    worker = aioqueue.Worker(q, tasks, hooks=[rec], **FAST)
    async with anyio.create_task_group() as tg:
        tg.start_soon(worker.run)
        await rec.wait_for("started")
        tg.start_soon(worker.stop, 10)
        late = await q.enqueue("short")  # enqueued after stop: must not be claimed
        release.set()
    assert (await q.get_job(out.id)).state is aioqueue.JobState.COMPLETED
    assert (await q.get_job(late.id)).state is aioqueue.JobState.PENDING


async def test_stale_completion_is_fenced(q: aioqueue.Queue, conn: Any) -> None:
    tasks = aioqueue.Tasks()
    proceed = anyio.Event()

    @tasks.task("fenced")
    async def fenced(ctx: aioqueue.JobContext, payload: Any) -> str:
        await proceed.wait()
        return "stale"

    out = await q.enqueue("fenced")
    schema = q.config.schema
    # heartbeat far away so the lease change is only noticed by the completion's fencing
    async with running_worker(q, tasks, heartbeat_interval=2.5) as (_, rec):
        await rec.wait_for("started", out.id)
        # Another claim took over (as after a rescue): new lease token.
        await conn.execute(
            f'UPDATE "{schema}".jobs SET lease_token = $2, locked_by = $3 WHERE id = $1',
            out.id,
            2**62,
            "other-worker",
        )
        proceed.set()
        await rec.wait_for("completion_rejected", out.id)
    job = await q.get_job(out.id)
    assert job.state is aioqueue.JobState.RUNNING
    assert job.result is None
    assert job.locked_by == "other-worker"


async def test_zombie_outcome_with_stale_token_is_rejected(q: aioqueue.Queue, conn: Any) -> None:
    out = await q.enqueue("x")
    schema = q.config.schema
    rows = await q.queries.job_claim(
        conn,
        kinds=["x"],
        default_max_attempts=[3],
        forbidden_flags=[],
        batch=1,
        worker_id="w1",
        lease=30.0,
    )
    stale = rows[0]["lease_token"]
    await conn.execute(
        f'UPDATE "{schema}".jobs SET lease_token = lease_token + 1 WHERE id=$1', out.id
    )
    accepted = await q.queries.job_finish_many(
        conn,
        outcomes=[
            Outcome(
                id=out.id,
                lease_token=stale,
                kind="x",
                attempt=1,
                state="completed",
                result='"zombie"',
            )
        ],
    )
    assert accepted == []
    assert (await q.get_job(out.id)).state is aioqueue.JobState.RUNNING


async def test_lease_lost_cancels_the_handler(q: aioqueue.Queue, conn: Any) -> None:
    tasks = aioqueue.Tasks()
    cancelled = anyio.Event()

    @tasks.task("victim")
    async def victim(ctx: aioqueue.JobContext, payload: Any) -> None:
        try:
            await anyio.sleep(60)
        except BaseException:
            cancelled.set()
            raise

    out = await q.enqueue("victim")
    async with running_worker(q, tasks) as (_, rec):
        await rec.wait_for("started", out.id)
        await conn.execute(
            f'UPDATE "{q.config.schema}".jobs SET lease_token = lease_token + 1 WHERE id = $1',
            out.id,
        )
        await rec.wait_for("lease_lost", out.id)
        with anyio.fail_after(5):
            await cancelled.wait()


async def test_supersede_cancels_running_job_and_runs_new_one(q: aioqueue.Queue) -> None:
    tasks = aioqueue.Tasks()
    runs: list[int] = []

    @tasks.task("render")
    async def render(ctx: aioqueue.JobContext, payload: int) -> int:
        runs.append(payload)
        if payload == 1:
            await anyio.sleep(60)
        return payload

    first = await q.enqueue("render", 1, unique_key="doc:7", on_conflict="supersede")
    async with running_worker(q, tasks, heartbeat_interval=2.5) as (_, rec):
        await rec.wait_for("started", first.id)
        second = await q.enqueue("render", 2, unique_key="doc:7", on_conflict="supersede")
        assert second.id != first.id
        await rec.wait_for("cancelled", first.id, timeout=2)  # by notification, not heartbeat
        await rec.wait_for("completed", second.id)
    assert (await q.get_job(first.id)).state is aioqueue.JobState.CANCELLED
    assert (await q.get_job(second.id)).result == 2


async def test_rescuer_gives_back_expired_leases(q: aioqueue.Queue, conn: Any) -> None:
    schema = q.config.schema
    again = await q.enqueue("dead", max_attempts=3)
    spent = await q.enqueue("dead", max_attempts=1)
    await q.queries.job_claim(
        conn,
        kinds=["dead"],
        default_max_attempts=[3],
        forbidden_flags=[],
        batch=2,
        worker_id="dead-worker",
        lease=30.0,
    )
    await conn.execute(
        f"UPDATE \"{schema}\".jobs SET lease_expires_at = now() - interval '1 second'"
    )
    rows = await q.queries.job_rescue_expired(conn, limit=100)
    assert {r["id"]: r["state"] for r in rows} == {again.id: "scheduled", spent.id: "failed"}
    job = await q.get_job(again.id)
    assert job.attempts == 1
    assert job.error is not None
    assert "lease expired" in job.error.message
    assert job.run_at > job.started_at  # type: ignore[operator]
    assert (await q.get_job(spent.id)).state is aioqueue.JobState.FAILED


async def test_keyboard_interrupt_in_task_stops_worker_and_releases(q: aioqueue.Queue) -> None:
    tasks = aioqueue.Tasks()

    @tasks.task("ctrl-c")
    async def ctrl_c(ctx: aioqueue.JobContext, payload: Any) -> None:
        raise KeyboardInterrupt

    out = await q.enqueue("ctrl-c")
    worker = aioqueue.Worker(q, tasks, **FAST)
    with anyio.fail_after(10):
        await worker.run()  # returns by itself: the task asked for a graceful stop
    job = await q.get_job(out.id)
    assert job.state is aioqueue.JobState.PENDING
    assert job.attempts == 0


async def test_unencodable_result_fails_the_attempt(q: aioqueue.Queue) -> None:
    tasks = aioqueue.Tasks()

    @tasks.task("weird", max_attempts=1)
    async def weird(ctx: aioqueue.JobContext, payload: Any) -> object:
        return object()

    out = await q.enqueue("weird")
    await aioqueue.Worker(q, tasks, **FAST).run(until_empty=True)
    job = await q.get_job(out.id)
    assert job.state is aioqueue.JobState.FAILED
    assert job.error is not None
    assert "result" in job.error.message


async def test_run_cancelled_from_outside_releases_jobs(q: aioqueue.Queue) -> None:
    tasks = aioqueue.Tasks()
    rec = Recorder()

    @tasks.task("long")
    async def long(ctx: aioqueue.JobContext, payload: Any) -> None:
        await anyio.sleep(60)

    out = await q.enqueue("long")
    worker = aioqueue.Worker(q, tasks, hooks=[rec], **FAST)
    task = asyncio.ensure_future(worker.run())
    await rec.wait_for("started", out.id)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    job = await q.get_job(out.id)
    assert job.state is aioqueue.JobState.PENDING
    assert job.attempts == 0


async def test_handler_ignoring_its_timeout_is_abandoned_and_fenced(q: aioqueue.Queue) -> None:
    tasks = aioqueue.Tasks()
    release = anyio.Event()

    @tasks.task("stubborn", timeout=0.2, max_attempts=1)
    async def stubborn(ctx: aioqueue.JobContext, payload: Any) -> str:
        while not release.is_set():
            try:
                await release.wait()
            except BaseException:  # swallows the timeout's cancellation: a bug we survive
                continue
        return "zombie result"

    out = await q.enqueue("stubborn")
    async with running_worker(q, tasks, stuck_grace=0.3) as (_, rec):
        await rec.wait_for("failed", out.id)
        job = await q.get_job(out.id)
        assert job.state is aioqueue.JobState.FAILED
        assert job.error is not None
        assert "did not stop" in job.error.message
        release.set()  # the zombie finally returns (before the worker stops): result dropped
    assert (await q.get_job(out.id)).result is None
    assert not rec.of("completed")
