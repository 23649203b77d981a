"""JobEvents: the hook events a worker emits about its jobs, built in one place.

An outcome's event (completed, retried, snoozed, failed, released, cancelled) is emitted once
the completer has written it, not when the handler returns: a listener never hears of an
outcome the database then rejected (that one is ``completion_rejected``).
"""

from __future__ import annotations

import logging
from typing import Any

import msgspec

from ..events import Event, Hooks
from .outcome import Outcome
from .running import RunningJob

_log = logging.getLogger("aioqueue.worker")

_OUTCOME_EVENTS: dict[str, Any] = {
    "completed": "completed",
    "scheduled": "retried",
    "failed": "failed",
    "pending": "released",
    "cancelled": "cancelled",
}


class JobEvents:
    def __init__(self, hooks: Hooks, worker_id: str) -> None:
        self.hooks = hooks
        self._worker_id = worker_id

    def emit(self, event: Event) -> None:
        if self.hooks:
            self.hooks.emit(event)

    def worker(self, type: Any) -> None:
        self.emit(Event(type=type, worker_id=self._worker_id))

    def written(self, outcome: Outcome) -> None:
        """The completer wrote ``outcome`` (the caller checked that someone listens)."""
        snoozed = outcome.state == "scheduled" and outcome.give_back
        self.hooks.emit(
            Event(
                type="snoozed" if snoozed else _OUTCOME_EVENTS[outcome.state],
                worker_id=self._worker_id,
                job_id=outcome.id,
                kind=outcome.kind,
                attempt=outcome.attempt,
                error=_error_message(outcome.error),
                duration=outcome.duration,
            )
        )

    def rejected(self, outcome: Outcome) -> None:
        """The database fenced ``outcome`` out: the job is no longer this worker's."""
        _log.warning(
            "worker %s: outcome %s of job %s rejected: lease lost (job rescued or "
            "changed elsewhere)",
            self._worker_id,
            outcome.state,
            outcome.id,
        )
        self.emit(
            Event(
                type="completion_rejected",
                worker_id=self._worker_id,
                job_id=outcome.id,
                kind=outcome.kind,
                attempt=outcome.attempt,
            )
        )

    def lease_lost(self, job: RunningJob) -> None:
        self.emit(
            Event(
                type="lease_lost",
                worker_id=self._worker_id,
                job_id=job.id,
                kind=job.kind,
                attempt=job.attempt,
            )
        )

    def rescued(self, job_id: int, kind: str, state: str, attempts: int) -> None:
        self.emit(
            Event(
                type="rescued",
                worker_id=self._worker_id,
                job_id=job_id,
                kind=kind,
                attempt=attempts,
            )
        )


def _error_message(error_json: str | None) -> str | None:
    if error_json is None:
        return None
    try:
        value = msgspec.json.decode(error_json)
        return str(value.get("message")) if isinstance(value, dict) else None
    except msgspec.DecodeError:
        return None
