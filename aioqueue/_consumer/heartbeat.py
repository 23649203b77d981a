"""Heartbeat: one statement per tick extends the leases of all the jobs the foreman holds.

The foreman acts on the answer: a job missing from it lost its lease (rescued elsewhere,
cancelled, or completed by an admin) and its handler is cancelled at once, since its outcome
could not be recorded anyway; a job whose cancellation was requested (``supersede``) is
cancelled too. Each tick also runs ``touch`` (the worker's row in the workers table: one small
statement, whether jobs run or not).
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Awaitable, Callable

import anyio
from anyio.abc import TaskStatus

from .._db.connect import Outage, replace_connections
from .._db.errors import TRANSIENT
from .._db.queries import Executor, Queries
from .._service import RETRYING, jittered
from .foreman import Foreman

_log = logging.getLogger("aioqueue.worker")
LAG_WARNING = 1.0


class Heartbeat:
    name = "heartbeat"

    def __init__(
        self,
        db: Executor,
        queries: Queries,
        foreman: Foreman,
        *,
        interval: float,
        lease: float,
        touch: Callable[[], Awaitable[object]] | None = None,
        outage: Outage | None = None,
    ) -> None:
        self._db = db
        self._queries = queries
        self._foreman = foreman
        self._interval = interval
        self._lease = lease
        self._touch = touch
        self._outage = outage or Outage()
        self._next_touch = -math.inf
        self._poke = anyio.Event()
        self.beats = 0

    def poke(self) -> None:
        """Beat now (e.g. a supersede notification arrived)."""
        self._poke.set()

    async def run(self, *, task_status: TaskStatus[None] = anyio.TASK_STATUS_IGNORED) -> None:
        task_status.started()
        while True:
            wanted = jittered(self._interval)
            started = anyio.current_time()
            with anyio.move_on_after(wanted):
                await self._poke.wait()
            self._poke = anyio.Event()
            lag = anyio.current_time() - started - wanted
            if lag > LAG_WARNING:
                _log.warning("heartbeat: event loop was blocked for %.1f s", lag)
            try:
                await self.beat()
                if self._touch is not None and anyio.current_time() >= self._next_touch:
                    # at most every half interval: a burst of pokes (supersedes) adds none
                    self._next_touch = anyio.current_time() + self._interval / 2
                    with anyio.fail_after(max(self._lease / 2, 1.0)):
                        await self._touch()
                        self._outage.recovered("heartbeat")  # a round trip on every tick
            except TRANSIENT as exc:
                self._outage.failed("heartbeat", exc)
                _log.warning(
                    "heartbeat: failed (%s); will retry", type(exc).__name__, extra=RETRYING
                )
                await replace_connections(self._db, exc)

    async def beat(self) -> None:
        snapshot = self._foreman.snapshot()
        if not snapshot:
            return
        sent = time.monotonic()
        with anyio.fail_after(max(self._lease / 2, 1.0)):
            rows = await self._queries.job_heartbeat_many(
                self._db,
                ids=[j.id for j in snapshot],
                lease_tokens=[j.lease_token for j in snapshot],
                lease=self._lease,
            )
        self.beats += 1
        self._outage.recovered("heartbeat")
        ours = {r["id"]: r["cancel_requested"] for r in rows}
        self._foreman.leases_confirmed(snapshot, ours, sent)
