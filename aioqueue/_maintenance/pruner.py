"""Pruner: moves finished jobs out of the hot table, and forgets them after their retention.

Every few seconds (``config.HISTORY_MOVE_INTERVAL``, or ``interval`` if shorter) jobs finished
``move_after`` seconds ago (``config.HISTORY_MOVE_AFTER``, a minute) move from ``jobs`` to the
partitioned ``jobs_history`` (migration 0011), one small batch per statement with SKIP LOCKED,
so the table the claim reads holds active jobs and about a minute of finished ones.
Every ``interval`` a full pass creates history partitions ahead, drops the
partitions whose rows are all past retention (whole tables: no row DELETEs, no vacuum), deletes
rows still in ``jobs`` past retention (a parent kept for its children, rows from before the
migration), deletes the groups that finished longer ago than the longest retention (their
members are gone by then; none if a state is kept forever), and deletes the rows of workers not
seen for ``forget_workers_after`` seconds.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable
from functools import partial

import anyio
import asyncpg
from anyio.abc import TaskStatus

from .. import config
from .._db.connect import replace_connections
from .._db.queries import Executor, Queries
from .._service import run_every

_log = logging.getLogger("aioqueue.maintenance")
BATCH = 1000
FINISHED = ("completed", "failed", "cancelled")


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
        move_interval: float = config.HISTORY_MOVE_INTERVAL,
        move_after: float = config.HISTORY_MOVE_AFTER,
    ) -> None:
        self._db = db
        self._queries = queries
        self._retention = {s: r for s, r in retention.items() if r is not None}
        kept = [retention.get(state) for state in FINISHED]
        self._group_retention = None if None in kept else max(r for r in kept if r is not None)
        self._interval = interval
        self._move_interval = min(move_interval, interval)
        self._move_after = move_after
        self._transient = transient
        self._batch = batch
        self._forget_workers_after = forget_workers_after
        self._last_full = -float("inf")
        self.deleted = 0
        self.moved = 0

    async def run(self, *, task_status: TaskStatus[None] = anyio.TASK_STATUS_IGNORED) -> None:
        task_status.started()
        await run_every(
            self._move_interval,
            self._tick,
            name=self.name,
            transient=self._transient,
            on_error=partial(replace_connections, self._db),
        )

    async def _tick(self) -> None:
        if time.monotonic() - self._last_full >= self._interval:
            self._last_full = time.monotonic()
            await self.prune()
        await self.move()

    async def _until_short(self, batch: Callable[[], Awaitable[int]]) -> int:
        """Run ``batch`` (one statement of up to ``self._batch`` rows) until one comes back
        short; returns the rows of all of them."""
        total = 0
        while True:
            n = await batch()
            total += n
            if n < self._batch:
                return total

    async def move(self) -> int:
        """Move every finished job into jobs_history, a batch per statement; returns how many."""
        total = 0
        for state in FINISHED:
            total += await self._until_short(partial(self._move_batch, state))
        return total

    async def _move_batch(self, state: str) -> int:
        n = await self._queries.job_history_move(
            self._db, state=state, limit=self._batch, older_than=self._move_after
        )
        self.moved += n
        return n

    async def prune(self) -> int:
        """Forget everything past retention; returns the rows deleted or dropped."""
        await self._locked_out(self._queries.history_prepare(self._db, ahead=self._ahead))
        total = 0
        for state, seconds in self._retention.items():
            total += await self._until_short(
                partial(
                    self._queries.job_prune,
                    self._db,
                    state=state,
                    retention=seconds,
                    limit=self._batch,
                )
            )
            dropped = await self._locked_out(
                self._queries.history_drop_expired(self._db, state=state, retention=seconds)
            )
            total += dropped
        if total:
            _log.info("pruner: deleted %d finished jobs", total)
        self.deleted += total
        await self.prune_workers()
        await self.prune_groups()
        return total

    async def prune_groups(self) -> int:
        """Delete the groups finished longer ago than every state's retention; returns how
        many."""
        if self._group_retention is None:
            return 0
        prune = partial(
            self._queries.group_prune,
            self._db,
            retention=self._group_retention,
            limit=self._batch,
        )
        try:
            total = await self._until_short(prune)
        except asyncpg.InsufficientPrivilegeError:
            # a role granted before migration 0013 (examples/sql_least_privilege.sql now grants
            # it): the worker goes on, its groups are kept
            _log.warning("pruner: no DELETE on job_groups; finished groups are kept")
            self._group_retention = None
            return 0
        if total:
            _log.info("pruner: forgot %d finished groups", total)
        return total

    @property
    def _ahead(self) -> float:
        return 4 * self._interval  # history_prepare adds at least two partition widths

    async def _locked_out(self, call: Awaitable[int]) -> int:
        """Run a partition DDL call; a long reader of the history holding its lock past the
        DDL's lock_timeout makes it wait for the next pass instead of queueing readers."""
        try:
            return await call
        except asyncpg.LockNotAvailableError:
            _log.warning("pruner: history partitions busy; will retry at the next pass")
            return 0

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
