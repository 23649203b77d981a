"""The admin methods of ``Queue``: cancel, retry, reschedule, complete and fail jobs (kept
here so that queue.py stays small)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from typing import NoReturn

import asyncpg
import msgspec

from . import config
from ._db.connect import replaces_read_only
from ._db.queries import Queries
from ._spec import check_run_at
from .errors import ConfigurationError, JobNotFound, JobStateError
from .types import EnqueueResult, Job


class AdminMixin:
    pool: asyncpg.Pool
    queries: Queries

    async def get_job(self, job_id: int) -> Job:  # pragma: no cover - ReadMixin defines it
        raise NotImplementedError

    @replaces_read_only
    async def cancel(self, job_id: int) -> Job:
        """Cancel a job. A waiting job is cancelled at once; a running one is asked to stop (its
        worker cancels the handler; the returned job is still ``running``). Raises JobNotFound,
        or JobStateError if the job is already completed, failed or cancelled."""
        if await self.queries.job_cancel(self.pool, id=job_id) is None:
            await self._raise_state_error(job_id, "cancel")
        return await self.get_job(job_id)

    @replaces_read_only
    async def cancel_by_key(self, kind: str, unique_key: str) -> Job:
        """Cancel the active job of ``kind`` holding ``unique_key`` (see ``cancel``)."""
        check_filter("kind", kind)
        check_filter("unique_key", unique_key)
        cancelled = await self.queries.job_cancel(self.pool, kind=kind, unique_key=unique_key)
        if cancelled is None:
            raise JobNotFound(f"no active {kind!r} job with unique_key {unique_key!r}")
        return await self.get_job(cancelled[0])

    @replaces_read_only
    async def retry(self, job_id: int) -> EnqueueResult:
        """Re-run a failed or cancelled job as a new pending job whose ``rescheduled_from`` is
        ``job_id``. Idempotent: while a retry of the job is active, that one is returned
        (deduped), as is an active job holding the same unique_key."""
        retried = await self.queries.job_retry(self.pool, id=job_id)
        if retried is None:
            await self._raise_state_error(job_id, "retry", allowed="failed or cancelled")
        return EnqueueResult(*retried)

    @replaces_read_only
    async def reschedule(
        self,
        ids: Sequence[int],
        *,
        run_at: dt.datetime | None = None,
        priority: int | None = None,
        attempts: int | None = None,
    ) -> list[int]:
        """Change run_at / priority / attempts of waiting jobs; returns the ids changed (jobs
        that are running or finished are left alone and not in the result). A run_at that is
        naive or outside [config.RUN_AT_MIN, config.RUN_AT_MAX) raises InvalidJobError."""
        if run_at is not None:
            check_run_at(run_at)  # InvalidJobError naming run_at, before any SQL
        if priority is not None and not config.SMALLINT_MIN <= priority <= config.SMALLINT_MAX:
            raise ConfigurationError("priority must be in the smallint range")
        if attempts is not None and attempts < 0:
            raise ConfigurationError("attempts must be >= 0")
        return await self.queries.job_reschedule_many(
            self.pool, ids=list(ids), run_at=run_at, priority=priority, attempts=attempts
        )

    @replaces_read_only
    async def complete(self, ids: Sequence[int]) -> list[int]:
        """Mark waiting jobs completed without running them; returns the ids changed."""
        return await self.queries.job_settle_many(
            self.pool, ids=list(ids), state="completed", error=None
        )

    @replaces_read_only
    async def fail(self, ids: Sequence[int], reason: str) -> list[int]:
        """Fail waiting jobs permanently with ``reason``; returns the ids changed."""
        error = msgspec.json.encode(
            {"message": reason, "type": "ManuallyFailed", "traceback": "", "attempt": 0}
        ).decode()
        return await self.queries.job_settle_many(
            self.pool, ids=list(ids), state="failed", error=error
        )

    async def _raise_state_error(
        self, job_id: int, action: str, allowed: str = "pending, scheduled or running"
    ) -> NoReturn:
        job = await self.get_job(job_id)  # raises JobNotFound
        raise JobStateError(f"cannot {action} job {job_id}: it is {job.state} (needs {allowed})")


def check_filter(name: str, value: str | None) -> None:
    """Filters go to SQL as parameters; refuse what PostgreSQL text cannot hold, clearly."""
    if value is None:
        return
    if not isinstance(value, str) or "\x00" in value:
        raise ConfigurationError(f"{name} filter must be text without NUL characters")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise ConfigurationError(f"{name} filter must be valid UTF-8") from None
