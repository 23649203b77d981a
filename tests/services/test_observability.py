"""One hook interface: logging, Prometheus and OpenTelemetry subscribe; subscriber errors are
logged and never change a job's outcome."""

from __future__ import annotations

import datetime as dt
import logging
from typing import Any

import pytest
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from prometheus_client import CollectorRegistry

import aioqueue
from aioqueue.contrib.otel import OpenTelemetrySpans
from aioqueue.contrib.prometheus import PrometheusMetrics
from tests.support.worker_helpers import FAST, Recorder


def _tasks() -> aioqueue.Tasks:
    tasks = aioqueue.Tasks()

    @tasks.task("ok")
    async def ok(ctx: aioqueue.JobContext, payload: Any) -> str:
        return "fine"

    @tasks.task("bad", max_attempts=1)
    async def bad(ctx: aioqueue.JobContext, payload: Any) -> None:
        raise RuntimeError("SENTINEL-ERR")

    return tasks


async def test_events_cover_the_lifecycle(dsn: str, schema: str) -> None:
    rec = Recorder()
    q = await aioqueue.Queue.connect(dsn, schema=schema, hooks=[rec])
    try:
        ok = await q.enqueue("ok")
        dup = await q.enqueue("ok", unique_key="k")
        await q.enqueue("ok", unique_key="k")  # deduped: no second "enqueued"
        bad = await q.enqueue("bad")
        await aioqueue.Worker(q, _tasks(), hooks=[rec], **FAST).run(until_empty=True)
    finally:
        await q.close()
    assert {e.job_id for e in rec.of("enqueued")} == {ok.id, dup.id, bad.id}
    assert [e.type for e in rec.events if e.job_id == ok.id] == ["enqueued", "started", "completed"]
    assert rec.of("failed")[0].job_id == bad.id
    assert rec.of("failed")[0].error == "SENTINEL-ERR"
    assert [e.type for e in rec.events if e.job_id is None] == ["worker_started", "worker_stopped"]


async def test_subscriber_exceptions_are_logged_once_and_change_nothing(
    q: aioqueue.Queue, caplog: pytest.LogCaptureFixture
) -> None:
    calls = 0

    def broken(event: aioqueue.Event) -> None:
        nonlocal calls
        calls += 1
        raise ValueError("subscriber bug")

    outs = await q.enqueue_many([{"kind": "ok"} for _ in range(5)])
    with caplog.at_level(logging.ERROR, logger="aioqueue.worker"):
        await aioqueue.Worker(q, _tasks(), hooks=[broken], **FAST).run(until_empty=True)
    assert calls >= 10
    for out in outs:
        assert (await q.get_job(out.id)).state is aioqueue.JobState.COMPLETED
    logged = [r for r in caplog.records if "subscriber" in r.getMessage()]
    assert len(logged) == 1  # rate-limited: once per subscriber per minute


async def test_enqueue_many_events_name_each_kind(dsn: str, schema: str) -> None:
    """One "enqueued" event per job written (none for a deduped spec), with its own kind,
    whatever form the spec came in."""
    rec = Recorder()
    q = await aioqueue.Queue.connect(dsn, schema=schema, hooks=[rec])
    try:
        outs = await q.enqueue_many(
            [
                {"kind": "a", "payload": {"i": 1}},
                aioqueue.JobSpec(kind="b"),
                {"kind": "c", "unique_key": "u"},
                {"kind": "c", "unique_key": "u"},
            ]
        )
        bare = await q.enqueue_many([{"kind": "a", "payload": {"i": 2}}] * 2)
    finally:
        await q.close()
    assert outs[3].deduped
    events = [(e.job_id, e.kind) for e in rec.of("enqueued")]
    assert events == [
        (outs[0].id, "a"),
        (outs[1].id, "b"),
        (outs[2].id, "c"),
        (bare[0].id, "a"),
        (bare[1].id, "a"),
    ]


async def test_logging_subscriber_structured_fields(
    q: aioqueue.Queue, caplog: pytest.LogCaptureFixture
) -> None:
    out = await q.enqueue("bad")
    with caplog.at_level(logging.INFO, logger="aioqueue"):
        await aioqueue.Worker(q, _tasks(), **FAST).run(until_empty=True)
    failed = [r for r in caplog.records if getattr(r, "event", None) == "failed"]
    assert len(failed) == 1
    assert failed[0].job_id == out.id  # type: ignore[attr-defined]
    assert failed[0].kind == "bad"  # type: ignore[attr-defined]
    assert failed[0].levelno == logging.WARNING


async def test_prometheus_and_opentelemetry(q: aioqueue.Queue) -> None:
    registry = CollectorRegistry()
    metrics = PrometheusMetrics(registry)
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    spans = OpenTelemetrySpans(provider.get_tracer("test"))
    await q.enqueue_many([{"kind": "ok"}, {"kind": "ok"}, {"kind": "bad"}])
    await aioqueue.Worker(q, _tasks(), hooks=[metrics, spans], **FAST).run(until_empty=True)
    assert (
        registry.get_sample_value("aioqueue_events_total", {"event": "completed", "kind": "ok"})
        == 2
    )
    assert (
        registry.get_sample_value(
            "aioqueue_job_duration_seconds_count", {"kind": "bad", "outcome": "failed"}
        )
        == 1
    )
    finished = exporter.get_finished_spans()
    assert sorted(s.name for s in finished) == [
        "aioqueue.job bad",
        "aioqueue.job ok",
        "aioqueue.job ok",
    ]
    bad_span = next(s for s in finished if s.name == "aioqueue.job bad")
    assert bad_span.status.status_code.name == "ERROR"


def test_ctx_log_lines_carry_the_job_id_and_kind(caplog: pytest.LogCaptureFixture) -> None:
    info = aioqueue.JobInfo(
        id=42, kind="send.email", attempts=2, max_attempts=5, priority=0,
        run_at=dt.datetime.now(dt.UTC), created_at=dt.datetime.now(dt.UTC),
        queue_name=None, unique_key=None, flags=[],
    )  # fmt: skip
    with caplog.at_level(logging.INFO, logger="aioqueue.job"):
        aioqueue.JobContext(info).log.info("sending to %s", "a@b.com")
    [record] = caplog.records
    assert record.getMessage() == "job 42 (send.email): sending to a@b.com"
    assert (record.job_id, record.kind, record.attempt) == (42, "send.email", 2)  # type: ignore[attr-defined]
