"""JobContext: what a task handler receives besides its payload; Snooze, Fail and Cancel:
what it may raise to end its attempt on purpose."""

from __future__ import annotations

import datetime as dt
import logging
from typing import Any

import msgspec

from . import config

JOB_LOGGER = logging.getLogger("aioqueue.job")


class JobInfo(msgspec.Struct, frozen=True, kw_only=True):
    """The running job, as claimed."""

    id: int
    kind: str
    attempts: int
    max_attempts: int
    priority: int
    run_at: dt.datetime
    created_at: dt.datetime
    queue_name: str | None
    unique_key: str | None
    flags: list[str]


class _JobLog(logging.LoggerAdapter[logging.Logger]):
    """``ctx.log``: the job's id and kind before each message, and as ``extra`` fields."""

    def process(self, msg: Any, kwargs: Any) -> tuple[Any, Any]:
        extra = self.extra or {}
        kwargs["extra"] = {**extra, **kwargs.get("extra", {})}
        return f"job {extra.get('job_id')} ({extra.get('kind')}): {msg}", kwargs


class JobContext:
    """Handed to every handler: ``ctx.job`` (JobInfo), ``ctx.log`` (a logger bound to the job),
    ``ctx.state`` (the app's shared objects, given to the Worker), ``ctx.worker_id``."""

    __slots__ = ("_log", "job", "state", "worker_id")

    def __init__(self, job: JobInfo, *, state: Any = None, worker_id: str = "") -> None:
        self.job = job
        self.state = state
        self.worker_id = worker_id
        self._log: logging.LoggerAdapter[logging.Logger] | None = None

    @property
    def log(self) -> logging.LoggerAdapter[logging.Logger]:
        """A logger bound to the job (created on first use: most handlers never log)."""
        if self._log is None:
            self._log = _JobLog(
                JOB_LOGGER,
                {"job_id": self.job.id, "kind": self.job.kind, "attempt": self.job.attempts},
            )
        return self._log

    def __repr__(self) -> str:
        return f"JobContext(job_id={self.job.id}, kind={self.job.kind!r})"


class HandlerOutcome(Exception):
    """Base of the exceptions a handler raises to end its attempt on purpose."""


class Snooze(HandlerOutcome):
    """``raise aioqueue.Snooze(30)``: run the job again in 30 s; the attempt is not counted."""

    MAX_SECONDS = float(config.MAX_DELAY_SECONDS)  # delay='s limit

    def __init__(self, seconds: float) -> None:
        if (
            isinstance(seconds, bool)
            or not isinstance(seconds, int | float)
            or not 0 <= seconds <= self.MAX_SECONDS
        ):
            raise ValueError(
                f"Snooze seconds must be a number from 0 to {self.MAX_SECONDS:.0f}, got {seconds!r}"
            )
        self.seconds = float(seconds)
        super().__init__(f"snoozed for {self.seconds:g} s")


class Fail(HandlerOutcome):
    """``raise aioqueue.Fail("bad input")``: fail the job now, with no retries left."""


class Cancel(HandlerOutcome):
    """``raise aioqueue.Cancel("gone")``: end the job as cancelled."""
