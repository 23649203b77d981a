"""Statements of workflows (migration 0009): groups and the dependency graph."""

from __future__ import annotations

import datetime as dt

import asyncpg

from ...types import JobLink
from ._base import Executor, QueriesBase, check_batch


class WorkflowQueries(QueriesBase):
    async def group_create(self, db: Executor, *, on_complete: str | None) -> int:
        """A new open group; ``on_complete``: the callback's spec (JSON object text)."""
        return int(await db.fetchval(self._sql["group_create"], on_complete))

    async def group_seal(self, db: Executor, *, id: int) -> bool:
        """False when there is no such group."""
        return bool(await db.fetchval(self._sql["group_seal"], id))

    async def group_get(self, db: Executor, *, id: int) -> asyncpg.Record | None:
        """The group's counts (Group's fields but member_ids), or None."""
        return await db.fetchrow(self._sql["group_get"], id)

    async def group_prune(
        self, db: Executor, *, retention: float, limit: int, now: dt.datetime | None = None
    ) -> int:
        """Delete up to ``limit`` groups finished more than ``retention`` seconds ago."""
        check_batch(limit)
        return int(await db.fetchval(self._sql["group_prune"], retention, limit, now))

    async def job_family(self, db: Executor, *, id: int, limit: int) -> list[JobLink]:
        """A job's parents and children, up to ``limit`` of each."""
        rows = await db.fetch(self._sql["job_family"], id, limit)
        return [JobLink(relation=r[0], id=r[1], kind=r[2], state=r[3]) for r in rows]
