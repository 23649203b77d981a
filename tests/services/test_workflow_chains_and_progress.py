"""Chains, progress seen by a waiter, meta given to the handler, and a trace id carried from the
producer to the job's span (issue 21)."""

from __future__ import annotations

from typing import Any

import anyio
import pytest
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

import aioqueue
from aioqueue import JobSpec, JobState
from aioqueue.contrib.otel import OpenTelemetrySpans, traced_meta
from tests.support.worker_helpers import running_worker


async def test_chain_runs_in_order_and_a_failure_cancels_the_rest(q: aioqueue.Queue) -> None:
    tasks = aioqueue.Tasks()
    ran: list[int] = []

    @tasks.task("step", max_attempts=1)
    async def step(ctx: aioqueue.JobContext, payload: dict[str, int]) -> int:
        ran.append(payload["i"])
        previous = await ctx.parent_results()
        if payload["i"] == 3:
            raise aioqueue.Fail("stop here")
        return sum(previous.values()) + payload["i"]

    steps = await q.enqueue_chain([JobSpec(kind="step", payload={"i": i}) for i in range(6)])
    async with running_worker(q, tasks):
        last = await q.wait(steps[-1].id, timeout=30)
    assert ran == [0, 1, 2, 3]
    assert (await q.get_job(steps[2].id)).result == 0 + 1 + 2
    assert last.state == JobState.CANCELLED
    assert [(await q.get_job(s.id)).state for s in steps[3:]] == [
        JobState.FAILED,
        JobState.CANCELLED,
        JobState.CANCELLED,
    ]


async def test_progress_is_stored_and_seen_by_a_waiter(q: aioqueue.Queue) -> None:
    tasks = aioqueue.Tasks()
    seen_by_waiter = anyio.Event()
    reports: list[tuple[float | None, str | None]] = []

    @tasks.task("long")
    async def long(ctx: aioqueue.JobContext, payload: Any) -> str:
        await ctx.progress(0.4, "page 4 of 10")
        await seen_by_waiter.wait()  # the waiter saw it: finish
        return "ok"

    job = await q.enqueue("long", {})

    def on_progress(j: aioqueue.Job) -> None:
        reports.append((j.progress, j.progress_message))
        seen_by_waiter.set()

    async with running_worker(q, tasks):
        done = await q.wait(job.id, timeout=30, on_progress=on_progress)
    assert reports[0] == (0.4, "page 4 of 10")
    assert done.state == JobState.COMPLETED
    assert (done.progress, done.progress_message) == (0.4, "page 4 of 10")


async def test_progress_rejects_bad_fractions() -> None:
    import datetime as dt

    info = aioqueue.JobInfo(
        id=1, kind="k", attempts=1, max_attempts=1, priority=0,
        run_at=dt.datetime.now(dt.UTC), created_at=dt.datetime.now(dt.UTC),
        queue_name=None, unique_key=None, flags=[],
    )  # fmt: skip
    ctx = aioqueue.JobContext(info)
    for bad in (-0.1, 1.5, float("nan"), True, "0.5"):
        with pytest.raises(ValueError, match="from 0 to 1"):
            await ctx.progress(bad)  # type: ignore[arg-type]
    await ctx.progress(1.0, "done")  # outside a worker: accepted, not stored


async def test_meta_reaches_the_handler_and_is_limited(q: aioqueue.Queue) -> None:
    tasks = aioqueue.Tasks()
    got: list[Any] = []

    @tasks.task("m")
    async def m(ctx: aioqueue.JobContext, payload: Any) -> None:
        got.append(ctx.job.meta)

    job = await q.enqueue("m", {}, meta={"tenant": "acme", "n": 1})
    assert (await q.get_job(job.id)).meta == {"tenant": "acme", "n": 1}
    plain = await q.enqueue("m", {})
    await aioqueue.Worker(q, tasks, poll_interval=0.2).run(until_empty=True)
    assert sorted(got, key=str) == sorted([{"tenant": "acme", "n": 1}, None], key=str)
    assert (await q.get_job(plain.id)).meta is None
    with pytest.raises(aioqueue.InvalidJobError, match="meta"):
        await q.enqueue("m", {}, meta={"big": "x" * 5000})
    with pytest.raises(aioqueue.InvalidJobError, match="meta"):
        await q.enqueue("m", {}, meta=["not", "a", "dict"])  # type: ignore[arg-type]


async def test_trace_id_runs_from_producer_to_handler(q: aioqueue.Queue) -> None:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    tracer = provider.get_tracer("test")
    tasks = aioqueue.Tasks()

    @tasks.task("traced")
    async def traced(ctx: aioqueue.JobContext, payload: Any) -> str:
        assert ctx.job.meta is not None
        return str(ctx.job.meta["traceparent"])

    with tracer.start_as_current_span("http request") as request:
        job = await q.enqueue("traced", {}, meta=traced_meta({"tenant": "acme"}))
    trace_id = request.get_span_context().trace_id
    spans = OpenTelemetrySpans(tracer)
    await aioqueue.Worker(q, tasks, hooks=[spans], poll_interval=0.2).run(until_empty=True)
    done = await q.get_job(job.id)
    assert f"{trace_id:032x}" in done.result  # the handler read the producer's traceparent
    job_span = next(s for s in exporter.get_finished_spans() if s.name == "aioqueue.job traced")
    assert job_span.context.trace_id == trace_id
    assert job_span.parent is not None
    assert job_span.parent.span_id == request.get_span_context().span_id


async def test_dashboard_shows_parents_children_group_and_progress(q: aioqueue.Queue) -> None:
    from aioqueue.dashboard import create_app
    from tests.support.dashboard import client

    group = await q.enqueue_group(
        [JobSpec(kind="a"), JobSpec(kind="b", depends_on=[aioqueue.Ref(0)])],
        on_complete=JobSpec(kind="cb"),
    )
    a, b = group.member_ids
    await q.complete([a])
    s = q.config.schema
    await q.pool.execute(
        f"UPDATE \"{s}\".jobs SET progress = 0.25, progress_message = 'quarter' WHERE id = $1", b
    )
    async with client(create_app(q)) as http:
        child = (await http.get(f"/jobs/{b}")).text
        parent = (await http.get(f"/jobs/{a}")).text
    assert f'href="http://dash/jobs/{a}"' in child and "parents" in child
    assert f'href="http://dash/jobs/{b}"' in parent and "children" in parent
    assert "1 of 2 finished" in child and "quarter" in child and "25.0%" in child


async def test_cli_jobs_show_has_progress_parents_and_group(q: aioqueue.Queue, dsn: str) -> None:
    import json

    from tests.support.cli import aq

    group = await q.enqueue_group(
        [JobSpec(kind="a"), JobSpec(kind="b", depends_on=[aioqueue.Ref(0)], meta={"t": "x"})]
    )
    b = group.member_ids[1]
    s = q.config.schema
    await q.pool.execute(
        f"UPDATE \"{s}\".jobs SET progress = 0.5, progress_message = 'half' WHERE id = $1", b
    )
    out = await anyio.to_thread.run_sync(
        lambda: aq("--dsn", dsn, "--schema", s, "jobs", "show", str(b), "--json")
    )
    assert out.returncode == 0, out.stderr
    shown = json.loads(out.stdout)
    assert shown["state"] == "waiting"
    assert (shown["progress"], shown["progress_message"]) == (0.5, "half")
    assert (shown["pending_parents"], shown["group_id"], shown["meta"]) == (1, group.id, {"t": "x"})


async def test_typed_handle_enqueue_takes_depends_on_and_meta(q: aioqueue.Queue) -> None:
    tasks = aioqueue.Tasks()

    @tasks.task("typed.step")
    async def step(ctx: aioqueue.JobContext, payload: dict[str, int]) -> None:
        return None

    first = await step.enqueue(q, {"n": 1})
    second = await step.enqueue(q, {"n": 2}, depends_on=[first.id], meta={"k": "v"})
    job = await q.get_job(second.id)
    assert (job.state, job.meta, job.pending_parents) == (JobState.WAITING, {"k": "v"}, 1)
