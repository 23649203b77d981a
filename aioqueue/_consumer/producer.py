"""Producer: decides when to claim and how many, claims, and hands the jobs to the foreman.

How many: the foreman's free room (free slots plus the jobs worth claiming ahead). States::

    idle ──(notification | poll tick | timer for a future job | reconnect)──► claim
    claim ── got fewer than asked ──► idle
          └─ got a full batch ──► backlog: wait until half the room (slots + claimed ahead) is
                                  free (or a short cooldown after the first one frees), then
                                  claim again
    any ──(stop requested)──► stopped: never claims again

With a backlog a claim asks for at most half the room, so the next one goes out as soon as it
returns and runs while its jobs do: a worker whose jobs take less CPU than claiming them is
never left without work for a claim's round trip.

Wake-ups are debounced: many notifications while a claim runs lead to one more claim.
"""

from __future__ import annotations

import inspect
import logging
import math
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

import anyio
import asyncpg

from .._db.connect import Dedicated
from .._db.errors import TRANSIENT
from .._db.queries import Queries
from .._service import RETRYING, jittered
from ..tasks import Tasks
from .foreman import Foreman

_log = logging.getLogger("aioqueue.worker")

ForbiddenFlags = Sequence[str] | Callable[[], Sequence[str] | Awaitable[Sequence[str]]] | None
FETCH_COOLDOWN = 0.002
# Anyone who can connect may NOTIFY on the channel: after this many notifications in a row led
# to empty claims, a notification costs at most one claim per WAKE_COOLDOWN (a spoofed flood).
EMPTY_WAKES = 3
WAKE_COOLDOWN = 0.05
# How often a worker re-reads which of its kinds are gated (a limit, a rate or a pause: claimed
# through claim_gated). The ordinary claim skips gated kinds itself, so a stale list only delays
# a kind's jobs (by up to this long after it is gated or ungated), never over-admits.
GATED_REFRESH = 1.0


class Producer:
    def __init__(
        self,
        db: Dedicated,
        queries: Queries,
        tasks: Tasks,
        foreman: Foreman,
        *,
        worker_id: str,
        lease: float,
        poll_interval: float,
        forbidden_flags: ForbiddenFlags,
        wait_for_space: Callable[[], Awaitable[None]],
    ) -> None:
        self._db = db
        self._queries = queries
        self._kinds = tasks.kinds
        self._defaults = tasks.default_max_attempts()
        self._foreman = foreman
        foreman.wake_producer = self.wake  # a slot freed behind a flow limit, or jobs released
        self._worker_id = worker_id
        self._lease = lease
        self._poll_interval = poll_interval
        self._forbidden = forbidden_flags
        self._wait_for_space = wait_for_space
        self._wake = anyio.Event()
        self._stop = anyio.Event()
        self._timer_at: float | None = None
        self._empty_wakes = 0  # claims in a row woken by a notification that found nothing
        self._claimed_at = 0.0
        self.claims = 0
        self._gated: list[str] = []  # this worker's kinds with flow limits (GATED_REFRESH)
        self._gated_at = -math.inf

    # -- signals (called from other services; all synchronous and cheap) ------------------

    def wake(self) -> None:
        self._wake.set()

    def wake_at(self, epoch: float) -> None:
        """A job becomes due at ``epoch`` (wall clock): wake then if that is before the poll."""
        delay = epoch - time.time()
        if delay <= 0:
            self.wake()
            return
        when = anyio.current_time() + delay
        if self._timer_at is None or when < self._timer_at:
            self._timer_at = when
            self._wake.set()  # re-evaluate the sleep deadline

    def stop(self) -> None:
        """Never claim again; the foreman starts no more jobs and gives the ready ones back."""
        self._stop.set()
        self._wake.set()
        self._foreman.close()

    # -- loop --------------------------------------------------------------------------------

    async def run(
        self,
        *,
        until_empty: bool,
        wait_idle: Callable[[], Awaitable[None]],
    ) -> None:
        """Claim until stopped (or, with ``until_empty``, until nothing is due and all is done)."""
        try:
            await self._loop(until_empty, wait_idle)
        finally:
            self._foreman.release_ready()  # stopped, failed or cancelled: none stays claimed

    async def _loop(self, until_empty: bool, wait_idle: Callable[[], Awaitable[None]]) -> None:
        backlog = True  # the first claim happens at once
        foreman = self._foreman
        while not self._stop.is_set():
            woken = False
            if backlog:
                await self._wait_for_slots()
            else:
                woken = await self._wait_for_wake()
            if self._stop.is_set():
                return
            free = foreman.free()
            if free <= 0:
                backlog = True
                continue
            if backlog:  # half the room: the next claim goes out while these jobs run
                free = min(free, foreman.half_room())
            await self._wait_for_space()
            try:
                got = await self._claim(free)
            except TRANSIENT as exc:
                self._db.outage.failed("producer", exc)
                _log.warning(
                    "producer: claim failed (%s); retrying after a poll",
                    type(exc).__name__,
                    extra=RETRYING,
                )
                backlog = False
                continue
            # draining: a short batch may just be the last one; the next claim says so
            backlog = got == free or (until_empty and got > 0)
            self._empty_wakes = self._empty_wakes + 1 if woken and not got else 0
            if until_empty and got == 0:
                if foreman.active == 0:
                    # Outcomes still being written may make jobs due again (retries, releases).
                    await wait_idle()
                    if await self._claim(free) == 0 and foreman.active == 0:
                        return
                else:
                    await foreman.slot_freed()
                backlog = True

    async def _claim(self, free: int) -> int:
        self._wake = anyio.Event()  # notifications from now on trigger another claim
        started = time.monotonic()
        try:
            conn = await self._db.get()
            if started - self._gated_at >= GATED_REFRESH:
                self._gated = await self._queries.flow_gated_kinds(conn, kinds=self._kinds)
                self._gated_at = started
                self._foreman.wake_on_free = bool(self._gated)
            forbidden = await self._forbidden_flags()
            async with self._db.transaction(conn):
                rows = await self._claim_rows(conn, free, forbidden)
        except Exception:
            self._db.invalidate()  # whatever broke, the next claim starts on a fresh connection
            raise
        self.claims += 1
        self._db.outage.recovered("producer")
        self._claimed_at = anyio.current_time()
        self._foreman.claimed(rows, sent=started, took=self._claimed_at - started)
        return len(rows)

    async def _claim_rows(self, conn: Any, free: int, forbidden: list[str]) -> list[asyncpg.Record]:
        rows: list[asyncpg.Record] = []
        if len(self._gated) < len(self._kinds):  # it skips gated kinds itself
            rows = await self._queries.job_claim(
                conn,
                kinds=self._kinds,
                default_max_attempts=self._defaults,
                forbidden_flags=forbidden,
                batch=free,
                worker_id=self._worker_id,
                lease=self._lease,
            )
        if self._gated and len(rows) < free:
            rows += await self._queries.job_claim(
                conn,
                gated=True,
                kinds=self._kinds,
                default_max_attempts=self._defaults,
                forbidden_flags=forbidden,
                batch=free - len(rows),
                worker_id=self._worker_id,
                lease=self._lease,
            )
        return rows

    async def _forbidden_flags(self) -> list[str]:
        value = self._forbidden
        if value is None:
            return []
        if callable(value):
            result: Any = value()
            if inspect.isawaitable(result):
                result = await result
            return list(result or [])
        return list(value)

    async def _wait_for_wake(self) -> bool:
        """Until a wake-up, the poll or a timer; True if woken (by a notification, mostly)."""
        now = anyio.current_time()
        deadline = now + jittered(self._poll_interval)
        if self._timer_at is not None:
            deadline = min(deadline, self._timer_at)
        with anyio.move_on_at(deadline) as scope:
            await self._wake.wait()
        woken = not scope.cancelled_caught
        if woken and self._empty_wakes >= EMPTY_WAKES:
            with anyio.move_on_at(min(self._claimed_at + WAKE_COOLDOWN, deadline)):
                await self._stop.wait()
        if self._timer_at is not None and anyio.current_time() >= self._timer_at:
            self._timer_at = None
        return woken

    async def _wait_for_slots(self) -> None:
        """After a full batch: claim once half the room is free, or shortly after the first."""
        foreman = self._foreman
        half = foreman.half_room()
        if foreman.free() >= half:
            return
        while foreman.free() <= 0 and not self._stop.is_set():
            await foreman.slot_freed()
        with anyio.move_on_after(FETCH_COOLDOWN):
            while foreman.free() < half and not self._stop.is_set():
                await foreman.slot_freed()
