"""OpenTelemetry spans from aioqueue's lifecycle events (extra: ``aioqueue[otel]``)::

    worker = aioqueue.Worker(q, tasks, hooks=[OpenTelemetrySpans()])

One span per attempt, ``aioqueue.job <kind>``, from "started" to its outcome, with the job id,
kind and attempt as attributes; failed and retried attempts set an error status.
"""

from __future__ import annotations

from opentelemetry import trace
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


class OpenTelemetrySpans:
    def __init__(self, tracer: Tracer | None = None) -> None:
        self._tracer = tracer or trace.get_tracer("aioqueue")
        self._open: dict[tuple[int, int | None], Span] = {}

    def __call__(self, event: Event) -> None:
        if event.job_id is None:
            return
        key = (event.job_id, event.attempt)
        if event.type == "started":
            self._open[key] = self._tracer.start_span(
                f"aioqueue.job {event.kind}",
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
