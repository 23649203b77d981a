"""Lifecycle events: one typed hook interface that logging, metrics and tests subscribe to.

A subscriber is a plain callable taking an ``Event``. It runs inline on the worker's event loop,
so it must be quick; an exception in a subscriber is logged (at most once a minute per
subscriber) and never changes a job's outcome.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Literal

import msgspec

EventType = Literal[
    "enqueued",
    "started",
    "completed",
    "failed",
    "retried",
    "snoozed",
    "rescued",
    "released",
    "cancelled",
    "lease_lost",
    "completion_rejected",
    "worker_started",
    "worker_stopped",
]

_log = logging.getLogger("aioqueue.worker")


class Event(msgspec.Struct, frozen=True, kw_only=True):
    type: EventType
    worker_id: str = ""
    job_id: int | None = None
    kind: str | None = None
    attempt: int | None = None
    error: str | None = None
    duration: float | None = None
    meta: dict[str, object] | None = None  # "started": the job's meta (e.g. a traceparent)


Subscriber = Callable[[Event], object]


class Hooks:
    """A list of subscribers; ``emit`` calls each, isolating their failures."""

    def __init__(self, subscribers: list[Subscriber] | None = None) -> None:
        self._subscribers: list[Subscriber] = list(subscribers or [])
        self._last_error_log: dict[int, float] = {}

    def subscribe(self, fn: Subscriber) -> Callable[[], None]:
        """Add a subscriber; returns a function that removes it."""
        self._subscribers.append(fn)
        return lambda: self._subscribers.remove(fn) if fn in self._subscribers else None

    def __bool__(self) -> bool:
        return bool(self._subscribers)

    def emit(self, event: Event) -> None:
        for fn in self._subscribers:
            try:
                fn(event)
            except Exception:
                now = time.monotonic()
                key = id(fn)
                if now - self._last_error_log.get(key, -1e9) >= 60:
                    self._last_error_log[key] = now
                    _log.exception("event subscriber %r raised (outcome unchanged)", fn)


_job_log = logging.getLogger("aioqueue.job")
_LEVELS = {
    "failed": logging.WARNING,
    "completion_rejected": logging.WARNING,
    "lease_lost": logging.WARNING,
    "rescued": logging.WARNING,
    "retried": logging.INFO,
    "snoozed": logging.INFO,
    "released": logging.INFO,
    "cancelled": logging.INFO,
    "completed": logging.INFO,  # at -v: one line per finished job, whatever its outcome
    # the worker logs its own start and stop lines (with its kinds and concurrency)
    "worker_started": logging.DEBUG,
    "worker_stopped": logging.DEBUG,
}


def log_event(event: Event) -> None:
    """The logging subscriber: one line per event on ``aioqueue.job`` (``aioqueue.worker`` for
    worker events) with structured fields in ``extra`` (event, job_id, kind, attempt,
    worker_id, duration). Every finished attempt logs at INFO or above (one line per job at
    the CLI's -v); enqueued and started at DEBUG."""
    level = _LEVELS.get(event.type, logging.DEBUG)
    logger = _log if event.type.startswith("worker_") else _job_log
    if not logger.isEnabledFor(level):
        return
    extra = {
        "event": event.type,
        "job_id": event.job_id,
        "kind": event.kind,
        "attempt": event.attempt,
        "worker_id": event.worker_id,
        "duration": event.duration,
    }
    if event.job_id is None:
        logger.log(level, "%s %s", event.type, event.worker_id, extra=extra)
    else:
        suffix = f": {event.error}" if event.error and event.type != "completed" else ""
        took = "" if event.duration is None else f" in {event.duration * 1000:.1f} ms"
        logger.log(
            level,
            "job %s (%s) %s%s, attempt %s%s",
            event.job_id,
            event.kind,
            event.type,
            took,
            event.attempt,
            suffix,
            extra=extra,
        )
