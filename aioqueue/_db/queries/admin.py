"""Statements of the admin and monitoring side: read jobs, cancel, retry, reschedule, settle,
and the counts behind ``Queue.stats`` / ``history``."""

from __future__ import annotations

import datetime as dt

import asyncpg

from ._base import Executor, QueriesBase


class AdminQueries(QueriesBase):
    async def job_get(self, db: Executor, *, id: int) -> asyncpg.Record | None:
        """Every column of the job (JSON as text), or None."""
        return await db.fetchrow(self._sql["job_get"], id)

    async def job_get_many(self, db: Executor, *, ids: list[int]) -> dict[int, str]:
        """id -> state of the jobs that exist."""
        return {r["id"]: r["state"] for r in await db.fetch(self._sql["job_get_many"], ids)}

    async def job_watch(self, db: Executor, *, id: int) -> bool:
        """Mark a job that is not final as waited for; False if it is final or missing."""
        return bool(await db.fetch(self._sql["job_watch"], id))

    async def job_list(
        self,
        db: Executor,
        *,
        kind: str | None,
        state: str | None,
        queue_name: str | None,
        before_id: int | None,
        limit: int,
    ) -> list[asyncpg.Record]:
        """Jobs newest first (job_get's columns without the workflow ones)."""
        return await db.fetch(self._sql["job_list"], kind, state, queue_name, before_id, limit)

    async def job_cancel(
        self,
        db: Executor,
        *,
        id: int | None = None,
        kind: str | None = None,
        unique_key: str | None = None,
    ) -> tuple[int, str] | None:
        """Cancel one active job, by ``id`` or by ``kind`` and ``unique_key``: (id, state
        after), or None when there is no such active job."""
        if (id is None) == (kind is None or unique_key is None):
            raise ValueError("give id, or kind and unique_key")
        rows = await db.fetch(self._sql["job_cancel"], id, kind, unique_key)
        return (rows[0]["id"], rows[0]["state"]) if rows else None

    async def job_retry(self, db: Executor, *, id: int) -> tuple[int, bool] | None:
        """(new id, deduped), or None when the job is not failed/cancelled (or missing)."""
        rows = await db.fetch(self._sql["job_retry"], id)
        return (rows[0]["id"], rows[0]["deduped"]) if rows else None

    async def job_reschedule_many(
        self,
        db: Executor,
        *,
        ids: list[int],
        run_at: dt.datetime | None,
        priority: int | None,
        attempts: int | None,
    ) -> list[int]:
        """The ids changed (the others were not waiting)."""
        rows = await db.fetch(self._sql["job_reschedule_many"], ids, run_at, priority, attempts)
        return [r["id"] for r in rows]

    async def job_settle_many(
        self, db: Executor, *, ids: list[int], state: str, error: str | None
    ) -> list[int]:
        """Mark waiting jobs ``completed`` or ``failed`` (``error``: JSON text); the ids
        changed."""
        rows = await db.fetch(self._sql["job_settle_many"], ids, state, error)
        return [r["id"] for r in rows]

    async def job_lineage(self, db: Executor, *, id: int, depth: int) -> list[asyncpg.Record]:
        """The rescheduled_from chain around ``id`` (job_get's columns), oldest first."""
        return await db.fetch(self._sql["job_lineage"], id, depth)

    async def stats_counts(self, db: Executor) -> list[asyncpg.Record]:
        """(kind, state, count) rows."""
        return await db.fetch(self._sql["stats_counts"])

    async def stats_summary(self, db: Executor, *, window_seconds: float) -> asyncpg.Record:
        """One row: oldest_due, due, recent_completed, notify_queue_usage,
        oldest_xact_seconds."""
        row = await db.fetchrow(self._sql["stats_summary"], window_seconds)
        assert row is not None
        return row

    async def stats_workers(
        self, db: Executor, *, live_window_seconds: float, now: dt.datetime | None = None
    ) -> list[asyncpg.Record]:
        """The live workers (WorkerInfo's fields), oldest first."""
        return await db.fetch(self._sql["stats_workers"], live_window_seconds, now)

    async def stats_unhandled(
        self, db: Executor, *, live_window_seconds: float, now: dt.datetime | None = None
    ) -> dict[str, int]:
        """kind -> due jobs, for the due kinds no live worker handles."""
        rows = await db.fetch(self._sql["stats_unhandled"], live_window_seconds, now)
        return {r["kind"]: r["due"] for r in rows}

    async def stats_history(
        self, db: Executor, *, minutes: int
    ) -> list[tuple[dt.datetime, int, int]]:
        """(minute, completed, failed), oldest minute first."""
        rows = await db.fetch(self._sql["stats_history"], minutes)
        return [(r[0], r[1], r[2]) for r in rows]

    async def demo_counts(self, db: Executor) -> list[tuple[str, str, int]]:
        """(kind, state, count) rows."""
        return [
            (r["kind"], r["state"], r["count"]) for r in await db.fetch(self._sql["demo_counts"])
        ]

    async def schema_drop(self, db: Executor) -> None:
        await db.execute(self._sql["schema_drop"])
