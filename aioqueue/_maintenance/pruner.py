"""Pruner: deletes finished jobs after their retention, in small batches.

Each batch is one statement with SKIP LOCKED on the finished-jobs index, so N workers can prune
at once and claims (which never touch finished rows) are not blocked.
"""

from __future__ import annotations

import logging
from functools import partial

import anyio
from anyio.abc import TaskStatus

from .._db.connect import replace_connections
from .._db.queries import Executor, Queries
from .._service import run_every

_log = logging.getLogger("aioqueue.maintenance")
BATCH = 1000


class Pruner:
    name = "pruner"

    def __init__(
        self,
        db: Executor,
        queries: Queries,
        *,
        retention: dict[str, float | None],
        interval: float,
        transient: tuple[type[BaseException], ...] = (),
        batch: int = BATCH,
    ) -> None:
        self._db = db
        self._queries = queries
        self._retention = {s: r for s, r in retention.items() if r is not None}
        self._interval = interval
        self._transient = transient
        self._batch = batch
        self.deleted = 0

    async def run(self, *, task_status: TaskStatus[None] = anyio.TASK_STATUS_IGNORED) -> None:
        task_status.started()
        if not self._retention:
            await anyio.sleep_forever()
        await run_every(
            self._interval,
            self.prune,
            name=self.name,
            transient=self._transient,
            on_error=partial(replace_connections, self._db),
        )

    async def prune(self) -> int:
        """Delete everything due, one small batch per statement; returns rows deleted."""
        total = 0
        for state, seconds in self._retention.items():
            while True:
                n = await self._queries.job_prune(
                    self._db, state=state, retention=seconds, limit=self._batch
                )
                total += n
                if n < self._batch:
                    break
        if total:
            _log.info("pruner: deleted %d finished jobs", total)
        self.deleted += total
        return total
