"""Statements of flow control (migration 0010): limits, pauses, backpressure."""

from __future__ import annotations

import asyncpg

from ._base import Executor, QueriesBase


class FlowQueries(QueriesBase):
    async def flow_set_limits(self, db: Executor, *, kind: str, settings: str) -> None:
        """``settings``: a JSON object (a key set to null clears that setting)."""
        await db.execute(self._sql["flow_set_limits"], kind, settings)

    async def flow_declare(self, db: Executor, *, kind: str, settings: str) -> None:
        """A task's declared limits, written only if ``kind`` has no flow settings yet."""
        await db.execute(self._sql["flow_declare"], kind, settings)

    async def flow_reset(self, db: Executor, *, kind: str) -> bool:
        """Forget ``kind``'s flow settings; False if it had none."""
        return bool(await db.fetch(self._sql["flow_reset"], kind))

    async def flow_pause_queue(self, db: Executor, *, queue_name: str) -> None:
        await db.execute(self._sql["flow_pause_queue"], queue_name)

    async def flow_resume_queue(self, db: Executor, *, queue_name: str) -> None:
        await db.execute(self._sql["flow_resume_queue"], queue_name)

    async def flow_status(self, db: Executor) -> list[asyncpg.Record]:
        """One row per kind with flow settings (KindFlow's fields, rates as n and seconds)."""
        return await db.fetch(self._sql["flow_status"])

    async def flow_paused_queues(self, db: Executor) -> list[str]:
        return [r["queue_name"] for r in await db.fetch(self._sql["flow_paused_queues"])]

    async def flow_max_depths(self, db: Executor) -> dict[str, int]:
        """kind -> max_depth, for the kinds that have one."""
        rows = await db.fetch(self._sql["flow_max_depths"])
        return {r["kind"]: r["max_depth"] for r in rows}

    async def flow_depth(self, db: Executor, *, kind: str, cap: int) -> int:
        """Waiting jobs of ``kind``, counted up to ``cap``."""
        return int(await db.fetchval(self._sql["flow_depth"], kind, cap))
