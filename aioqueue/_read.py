"""The read methods of ``Queue``: get_job, list_jobs, stats, history and lineage, and
``job_from_row`` that turns a jobs row into a Job (kept here so that queue.py stays small).
The monitoring reads (list_jobs, stats, history, lineage) go to ``read_pool``."""

from __future__ import annotations

import asyncpg

from . import _codec, _flow, config
from ._admin import check_filter
from ._db.queries import Queries
from .errors import ConfigurationError, JobNotFound
from .types import HistoryPoint, Job, JobError, JobState, KindStats, Stats, WorkerInfo


class ReadMixin:
    pool: asyncpg.Pool
    read_pool: asyncpg.Pool
    queries: Queries

    async def get_job(self, job_id: int) -> Job:
        """The full job; raises JobNotFound if it does not exist (or was pruned)."""
        row = await self.queries.job_get(self.pool, id=job_id)
        if row is None:
            raise JobNotFound(job_id)
        return job_from_row(row)

    async def list_jobs(
        self,
        *,
        kind: str | None = None,
        state: JobState | str | None = None,
        queue_name: str | None = None,
        limit: int = 50,
        after: int | None = None,
    ) -> list[Job]:
        """Jobs newest first. For the next page pass ``after=`` the last id of this one."""
        if state is not None and str(state) not in set(JobState):
            raise ConfigurationError(f"state must be one of {', '.join(JobState)}, got {state!r}")
        if not isinstance(limit, int) or not 1 <= limit <= 10_000:
            raise ConfigurationError("limit must be an integer between 1 and 10000")
        check_filter("kind", kind)
        check_filter("queue_name", queue_name)
        rows = await self.queries.job_list(
            self.read_pool,
            kind=kind,
            state=None if state is None else str(state),
            queue_name=queue_name,
            before_id=after,
            limit=limit,
        )
        return [job_from_row(r) for r in rows]

    async def stats(self, *, window: float = 60.0) -> Stats:
        """Counts per kind and state, the oldest due job, throughput over ``window`` seconds,
        the live workers and the due kinds that none of them has a handler for."""
        db = self.read_pool
        counts = await self.queries.stats_counts(db)
        summary = await self.queries.stats_summary(db, window_seconds=window)
        live = config.WORKER_LIVE_WINDOW
        workers = await self.queries.stats_workers(db, live_window_seconds=live)
        unhandled = await self.queries.stats_unhandled(db, live_window_seconds=live)
        kinds: dict[str, dict[str, int]] = {}
        totals: dict[str, int] = {s.value: 0 for s in JobState}
        for row in counts:
            kinds.setdefault(row["kind"], {})[row["state"]] = row["count"]
            totals[row["state"]] += row["count"]
        return Stats(
            kinds=[KindStats(kind=k, counts=v) for k, v in kinds.items()],
            totals=totals,
            oldest_due=summary["oldest_due"],
            due=summary["due"],
            throughput=summary["recent_completed"] / window,
            notify_queue_usage=float(summary["notify_queue_usage"]),
            oldest_transaction_seconds=(
                None
                if summary["oldest_xact_seconds"] is None
                else float(summary["oldest_xact_seconds"])
            ),
            workers=[WorkerInfo(**dict(r)) for r in workers],
            flow=await _flow.status(self.pool, self.queries),
            unhandled_kinds=unhandled,
        )

    async def history(self, *, minutes: int = 60) -> list[HistoryPoint]:
        """Jobs completed and failed per minute over the last ``minutes`` (oldest first)."""
        if not isinstance(minutes, int) or not 1 <= minutes <= 7 * 24 * 60:
            raise ConfigurationError("minutes must be an integer between 1 and 10080")
        rows = await self.queries.stats_history(self.read_pool, minutes=minutes)
        return [HistoryPoint(minute=m, completed=c, failed=f) for m, c, f in rows]

    async def lineage(self, job_id: int, *, depth: int = 20) -> list[Job]:
        """The chain of jobs linked to ``job_id`` by ``rescheduled_from`` (retries of it, cron
        occurrences before and after), up to ``depth`` each way, oldest first."""
        rows = await self.queries.job_lineage(self.read_pool, id=job_id, depth=depth)
        if not rows:
            raise JobNotFound(job_id)
        return [job_from_row(r) for r in rows]


def job_from_row(row: asyncpg.Record) -> Job:
    error = _codec.decode_json(row["error"])
    return Job(
        id=row["id"],
        kind=row["kind"],
        payload=_codec.decode_json(row["payload"]),
        state=JobState(row["state"]),
        priority=row["priority"],
        run_at=row["run_at"],
        attempts=row["attempts"],
        max_attempts=row["max_attempts"],
        unique_key=row["unique_key"],
        queue_name=row["queue_name"],
        flags=list(row["flags"]),
        result=_codec.decode_json(row["result"]),
        error=_codec.convert(error, JobError) if error is not None else None,
        locked_by=row["locked_by"],
        lease_expires_at=row["lease_expires_at"],
        rescheduled_from=row["rescheduled_from"],
        created_at=row["created_at"],
        started_at=row["started_at"],
        finished_at=row["finished_at"],
        # workflow columns (migration 0009): job_get reads them, job_list does not
        meta=_codec.decode_json(row.get("meta")),
        progress=row.get("progress"),
        progress_message=row.get("progress_message"),
        group_id=row.get("group_id"),
        pending_parents=row.get("pending_parents"),
        concurrency_key=row.get("concurrency_key"),
    )
