"""Prometheus metrics from aioqueue's lifecycle events (extra: ``aioqueue[prometheus]``)::

metrics = PrometheusMetrics()                       # registers on the default registry
worker = aioqueue.Worker(q, tasks, hooks=[metrics])
q = await aioqueue.Queue.connect(hooks=[metrics])   # for "enqueued"
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Histogram

from ..events import Event

_FINISHED = frozenset({"completed", "failed", "retried", "snoozed", "cancelled", "released"})


class PrometheusMetrics:
    """A subscriber: ``aioqueue_events_total{event,kind}`` and, for finished attempts,
    ``aioqueue_job_duration_seconds{kind,outcome}``."""

    def __init__(self, registry: CollectorRegistry | None = None, *, prefix: str = "aioqueue"):
        from prometheus_client import REGISTRY

        target = REGISTRY if registry is None else registry
        self.events = Counter(
            f"{prefix}_events_total", "Job lifecycle events", ["event", "kind"], registry=target
        )
        self.duration = Histogram(
            f"{prefix}_job_duration_seconds",
            "Handler run time per attempt",
            ["kind", "outcome"],
            buckets=(0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1, 5, 10, 60, 300),
            registry=target,
        )

    def __call__(self, event: Event) -> None:
        self.events.labels(event.type, event.kind or "").inc()
        if event.type in _FINISHED and event.duration is not None:
            self.duration.labels(event.kind or "", event.type).observe(event.duration)
