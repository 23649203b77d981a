"""JobContext: what a task handler receives besides its payload; Snooze, Fail and Cancel:
what it may raise to end its attempt on purpose."""

from __future__ import annotations

import datetime as dt
import logging
import math
from typing import Any, Protocol

import msgspec

from . import config
from .types import GroupOutcome

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
    meta: dict[str, Any] | None = None  # the user headers given to enqueue(meta=)


class JobAccess(Protocol):
    """What a worker lends a handler's context beyond the claimed row (progress, parents)."""

    def progress(self, job_id: int, lease_token: int, fraction: float, message: str | None) -> None:
        """Buffer a progress report; written in batches, fenced by the lease."""

    def reported(self, job_id: int) -> bool:
        """Whether the job has a progress report not written yet."""

    async def flush_job(self, job_id: int) -> None:
        """Write the job's unwritten progress report now (before its outcome)."""

    async def parent_results(self, job_id: int) -> dict[int, Any]:
        """The results of the job's parents (depends_on), by parent id."""


class _JobLog(logging.LoggerAdapter[logging.Logger]):
    """``ctx.log``: the job's id and kind before each message, and as ``extra`` fields."""

    def process(self, msg: Any, kwargs: Any) -> tuple[Any, Any]:
        extra = self.extra or {}
        kwargs["extra"] = {**extra, **kwargs.get("extra", {})}
        return f"job {extra.get('job_id')} ({extra.get('kind')}): {msg}", kwargs


class JobContext:
    """Handed to every handler: ``ctx.job`` (JobInfo), ``ctx.log`` (a logger bound to the job),
    ``ctx.state`` (the app's shared objects, given to the Worker), ``ctx.worker_id``."""

    __slots__ = ("_access", "_lease_token", "_log", "job", "state", "worker_id")

    def __init__(
        self,
        job: JobInfo,
        *,
        state: Any = None,
        worker_id: str = "",
        access: JobAccess | None = None,
        lease_token: int = 0,
    ) -> None:
        self.job = job
        self.state = state
        self.worker_id = worker_id
        self._log: logging.LoggerAdapter[logging.Logger] | None = None
        self._access = access
        self._lease_token = lease_token

    async def progress(self, fraction: float, message: str | None = None) -> None:
        """Report progress (``fraction`` from 0 to 1, an optional short message). Writes are
        batched: the latest report of each job is stored about every half second, and shows in
        ``Queue.get_job`` (``Job.progress``), ``Queue.wait(on_progress=)``, the CLI and the
        dashboard. Outside a worker (a test calling the handler) it is a no-op."""
        if (
            isinstance(fraction, bool)
            or not isinstance(fraction, int | float)
            or not math.isfinite(fraction)
            or not 0 <= fraction <= 1
        ):
            raise ValueError(f"progress fraction must be a number from 0 to 1, got {fraction!r}")
        if message is not None:
            if not isinstance(message, str) or "\x00" in message:
                raise ValueError("progress message must be text without NUL characters")
            cut = message.encode("utf-8", "replace")[: config.PROGRESS_MESSAGE_MAX_BYTES]
            message = cut.decode("utf-8", "ignore")  # cut to the column's limit, whole characters
        if self._access is not None:
            self._access.progress(self.job.id, self._lease_token, float(fraction), message)

    async def parent_results(self) -> dict[int, Any]:
        """The results of this job's parents (``depends_on``), by parent id: a parent that did
        not complete (``on_parent_failure="run"``) maps to None."""
        if self._access is None:
            return {}
        return await self._access.parent_results(self.job.id)

    @property
    def group(self) -> GroupOutcome | None:
        """In a group's ``on_complete`` callback: how the members ended; else None."""
        raw = (self.job.meta or {}).get("aioqueue_group")
        return None if raw is None else msgspec.convert(raw, GroupOutcome)

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
