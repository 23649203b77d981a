"""Scheduler: turns cron slots into jobs, exactly once per slot on any number of workers.

Exactly-once is the database's job (``cron_enqueue`` moves a per-cron ``last_slot`` forward under
a row lock), not a leader's: every worker runs this service and the losers get NULL back.
On start, slots missed within each cron's backfill window (after the last one enqueued) are
enqueued once; older ones never.
"""

from __future__ import annotations

import datetime as dt
import logging
import time
from collections.abc import Callable
from typing import Any

import anyio
from anyio.abc import TaskStatus

from .. import _cron
from .._clock import Clock, system_clock
from .._db.connect import replace_connections
from .._db.queries import Executor, Queries
from .._service import RETRYING
from .._spec import dumps
from ..tasks import CronSpec

_log = logging.getLogger("aioqueue.maintenance")
MAX_SLEEP = 1.0  # re-read the clock at least this often (clock jumps, new slots)


class Scheduler:
    name = "scheduler"

    def __init__(
        self,
        db: Executor,
        queries: Queries,
        crons: list[CronSpec],
        *,
        clock: Clock | None = None,
        transient: tuple[type[BaseException], ...] = (),
        on_enqueued: Callable[[CronSpec, dt.datetime, int], None] | None = None,
    ) -> None:
        self._db = db
        self._queries = queries
        self._crons = crons
        self._zones = {c.name: _cron.zone(c.timezone) for c in crons}
        self._clock = clock or system_clock
        self._injected = clock is not None
        self._transient = transient
        self._on_enqueued = on_enqueued
        self._checked: dict[str, dt.datetime] = {}
        self._offset = dt.timedelta()  # the database's clock minus this host's

    async def _now(self) -> dt.datetime:
        """The injected clock (tests), else the database's: this host's clock may be off."""
        if self._injected:
            return self._clock()
        epoch = await self._queries.db_clock(self._db)
        self._offset = dt.timedelta(seconds=epoch - time.time())
        return dt.datetime.fromtimestamp(epoch, dt.UTC)

    def _spec(self, cron: CronSpec) -> str:
        spec: dict[str, Any] = {"kind": cron.kind, "payload": cron.payload or {}}
        if cron.priority:
            spec["priority"] = cron.priority
        if cron.max_attempts is not None:
            spec["max_attempts"] = cron.max_attempts
        if cron.queue_name is not None:
            spec["queue_name"] = cron.queue_name
        return dumps(spec)

    async def start(self) -> None:
        """Decide where each cron resumes: its backfill window after the last slot, or now."""
        now = await self._now()
        rows = await self._queries.cron_last_slots(self._db, names=[c.name for c in self._crons])
        last = {r["name"]: r["last_slot"] for r in rows}
        for cron in self._crons:
            previous = last.get(cron.name)
            if previous is not None and cron.backfill > 0:
                window = now - dt.timedelta(seconds=cron.backfill)
                self._checked[cron.name] = max(previous, window)
            else:
                self._checked[cron.name] = now

    async def tick(self) -> int:
        """Enqueue every slot that came due since the last tick; returns how many we won."""
        now = await self._now()
        won = 0
        for cron in self._crons:
            checked = self._checked.get(cron.name, now)
            for slot in _cron.slots_between(cron.expr, self._zones[cron.name], checked, now):
                job_id = await self._queries.cron_enqueue(
                    self._db,
                    name=cron.name,
                    slot=slot,
                    spec=self._spec(cron),
                    now=now if self._injected else None,
                )
                if job_id is not None:
                    won += 1
                    if self._on_enqueued is not None:
                        self._on_enqueued(cron, slot, job_id)
            self._checked[cron.name] = max(checked, now)
        return won

    def _sleep_for(self) -> float:
        now = self._clock() + self._offset
        nearest = min(
            _cron.next_slot(c.expr, self._zones[c.name], self._checked.get(c.name, now))
            for c in self._crons
        )
        return max(0.0, min((nearest - now).total_seconds(), MAX_SLEEP))

    async def run(self, *, task_status: TaskStatus[None] = anyio.TASK_STATUS_IGNORED) -> None:
        if not self._crons:
            task_status.started()
            await anyio.sleep_forever()
        await self.start()
        task_status.started()
        while True:
            try:
                await self.tick()
            except self._transient as exc:
                _log.warning(
                    "scheduler: tick failed (%s); will retry", type(exc).__name__, extra=RETRYING
                )
                await replace_connections(self._db, exc)
            await anyio.sleep(self._sleep_for())
