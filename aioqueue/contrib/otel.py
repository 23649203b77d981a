"""OpenTelemetry spans from aioqueue's lifecycle events (extra: ``aioqueue[otel]``)::

    worker = aioqueue.Worker(q, tasks, hooks=[OpenTelemetrySpans()])

One span per attempt, ``aioqueue.job <kind>``, from "started" to its outcome, with the job id,
kind and attempt as attributes; failed and retried attempts set an error status.

Trace propagation: ``traced_meta()`` puts the current span's W3C context (``traceparent``,
``tracestate``) into a job's ``meta`` at enqueue time::

    await q.enqueue("send", payload, meta=traced_meta())

and the job's span starts as a child of that span, so one trace runs from the request that
enqueued the job through the job itself.
"""

from __future__ import annotations

from typing import Any

from opentelemetry import propagate, trace
from opentelemetry.trace import Span, Status, StatusCode, Tracer

from ..events import Event

_ENDS = frozenset(
    {
        "completed",
        "failed",
        "retried",
        "snoozed",
        "cancelled",
        "released",
        "lease_lost",
        "completion_rejected",
    }
)
_ERRORS = frozenset({"failed", "retried", "lease_lost", "completion_rejected"})


def traced_meta(meta: dict[str, Any] | None = None) -> dict[str, Any]:
    """``meta`` (a copy) with the current trace context injected (W3C trace context)."""
    carrier: dict[str, Any] = dict(meta or {})
    propagate.inject(carrier)
    return carrier


class OpenTelemetrySpans:
    def __init__(self, tracer: Tracer | None = None) -> None:
        self._tracer = tracer or trace.get_tracer("aioqueue")
        self._open: dict[tuple[int, int | None], Span] = {}

    def __call__(self, event: Event) -> None:
        if event.job_id is None:
            return
        key = (event.job_id, event.attempt)
        if event.type == "started":
            parent = None
            if event.meta and "traceparent" in event.meta:
                carrier = {k: v for k, v in event.meta.items() if isinstance(v, str)}
                parent = propagate.extract(carrier)
            self._open[key] = self._tracer.start_span(
                f"aioqueue.job {event.kind}",
                context=parent,
                attributes={
                    "aioqueue.job_id": event.job_id,
                    "aioqueue.kind": event.kind or "",
                    "aioqueue.attempt": event.attempt or 0,
                    "aioqueue.worker_id": event.worker_id,
                },
            )
        elif event.type in _ENDS:
            span = self._open.pop(key, None)
            if span is None:
                return
            span.set_attribute("aioqueue.outcome", event.type)
            if event.type in _ERRORS:
                span.set_status(Status(StatusCode.ERROR, event.error or event.type))
            span.end()
