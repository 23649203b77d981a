"""Rescuer: jobs whose lease expired (worker died or stalled) go back to the queue.

The attempt counts; when attempts are exhausted the job is failed. Idempotent on N workers:
one statement per batch with SKIP LOCKED, re-checking the lease under the row lock.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from functools import partial

import anyio
from anyio.abc import TaskStatus

from .._db.connect import replace_connections
from .._db.queries import Executor, Queries
from .._service import run_every

_log = logging.getLogger("aioqueue.maintenance")
BATCH = 1000


class Rescuer:
    name = "rescuer"

    def __init__(
        self,
        db: Executor,
        queries: Queries,
        *,
        interval: float,
        on_rescued: Callable[[int, str, str, int], None],
        transient: tuple[type[BaseException], ...],
    ) -> None:
        self._db = db
        self._queries = queries
        self._interval = interval
        self._on_rescued = on_rescued
        self._transient = transient

    async def run(self, *, task_status: TaskStatus[None] = anyio.TASK_STATUS_IGNORED) -> None:
        task_status.started()
        await run_every(
            self._interval,
            self.rescue,
            name=self.name,
            transient=self._transient,
            on_error=partial(replace_connections, self._db),
        )

    async def rescue(self) -> int:
        total = 0
        while True:
            rows = await self._queries.job_rescue_expired(self._db, limit=BATCH)
            for r in rows:
                _log.warning(
                    "rescuer: job %s (%s) lease expired after attempt %s -> %s",
                    r["id"],
                    r["kind"],
                    r["attempts"],
                    r["state"],
                )
                self._on_rescued(r["id"], r["kind"], r["state"], r["attempts"])
            total += len(rows)
            if len(rows) < BATCH:
                return total
