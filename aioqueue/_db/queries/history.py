"""Statements of the history (migration 0011): the pruner moves finished jobs out of the hot
table into ``jobs_history``, makes its partitions ahead and drops them whole at retention."""

from __future__ import annotations

import datetime as dt

from ._base import Executor, QueriesBase, check_batch


class HistoryQueries(QueriesBase):
    async def job_history_move(
        self,
        db: Executor,
        *,
        state: str,
        limit: int,
        older_than: float,
        now: dt.datetime | None = None,
    ) -> int:
        """Move up to ``limit`` jobs of ``state`` finished ``older_than`` seconds ago or more
        into jobs_history; returns how many."""
        check_batch(limit)
        return int(await db.fetchval(self._sql["job_history_move"], state, limit, older_than, now))

    async def history_prepare(
        self, db: Executor, *, ahead: float, now: dt.datetime | None = None
    ) -> int:
        """Create history partitions up to ``ahead`` seconds from now; returns how many."""
        return int(await db.fetchval(self._sql["history_prepare"], ahead, now))

    async def history_drop_expired(
        self,
        db: Executor,
        *,
        state: str,
        retention: float,
        max_partitions: int = 10,
        now: dt.datetime | None = None,
    ) -> int:
        """Drop ``state``'s history partitions past ``retention``; returns the rows dropped."""
        return int(
            await db.fetchval(
                self._sql["history_drop_expired"], state, retention, max_partitions, now
            )
        )
