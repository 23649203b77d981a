"""Pruner: deletes finished jobs after their retention, in small batches.

Each batch is one statement with SKIP LOCKED on the finished-jobs index, so N workers can prune
at once and claims (which never touch finished rows) are not blocked. Each pass also deletes the
rows of workers not seen for ``forget_workers_after`` seconds (they crashed without deleting it).
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
        forget_workers_after: float | None = None,
    ) -> None:
        self._db = db
        self._queries = queries
        self._retention = {s: r for s, r in retention.items() if r is not None}
        self._interval = interval
        self._transient = transient
        self._batch = batch
        self._forget_workers_after = forget_workers_after
        self.deleted = 0

    async def run(self, *, task_status: TaskStatus[None] = anyio.TASK_STATUS_IGNORED) -> None:
        task_status.started()
        if not self._retention and self._forget_workers_after is None:
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
        await self.prune_workers()
        return total

    async def prune_workers(self) -> int:
        """Delete the rows of workers unseen for ``forget_workers_after``; returns how many."""
        if self._forget_workers_after is None:
            return 0
        n = await self._queries.worker_prune(self._db, older_than=self._forget_workers_after)
        if n:
            _log.info(
                "pruner: forgot %d workers not seen for %.0f s", n, self._forget_workers_after
            )
        return n
