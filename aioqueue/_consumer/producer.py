"""Producer: decides when to claim, claims a batch for the free slots, starts executors.

Jobs that finish faster than a claim takes are claimed ahead: they wait in ``ready`` (claimed,
leased, not started) and start the moment a slot frees, so a claim's round trip overlaps running
jobs. How many is Little's law: the jobs that finish during a claim, twice over (claim time over
the time between two jobs finishing, which is job time / concurrency, or the worker's own CPU
per job when that is longer; at most ``PREFETCH_CAP``). Jobs that run long get none, so a busy
worker never sits on jobs an idle one could run; on a stop the ready ones are given back.

States::

    idle ──(notification | poll tick | timer for a future job | reconnect)──► claim
    claim ── got fewer than asked ──► idle
          └─ got a full batch ──► backlog: wait until half the room (slots + claimed ahead) is
                                  free (or a short cooldown after the first one frees), then
                                  claim again
    any ──(stop requested)──► stopped: never claims again

With a backlog a claim asks for at most half the room, so the next one goes out as soon as it
returns and runs while its jobs do: a worker whose jobs take less CPU than claiming them is
never left without work for a claim's round trip (drain c50 22k -> 30k jobs/s).

Wake-ups are debounced: many notifications while a claim runs lead to one more claim.
"""

from __future__ import annotations

import asyncio
import collections
import inspect
import logging
import math
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

import anyio
import asyncpg

from .._db.connect import Dedicated
from .._db.queries import Queries
from .._service import RETRYING, jittered
from ..tasks import Tasks
from .completer import TRANSIENT
from .running import RunningJob, lease_margin

_log = logging.getLogger("aioqueue.worker")

ForbiddenFlags = Sequence[str] | Callable[[], Sequence[str] | Awaitable[Sequence[str]]] | None
FETCH_COOLDOWN = 0.002
# Anyone who can connect may NOTIFY on the channel: after this many notifications in a row led
# to empty claims, a notification costs at most one claim per WAKE_COOLDOWN (a spoofed flood).
EMPTY_WAKES = 3
WAKE_COOLDOWN = 0.05
EWMA = 0.2  # weight of the newest sample in the claim and job time averages
# Jobs claimed ahead are at most this many (or the concurrency, if higher): only jobs that
# take the worker far less than a claim get that many, and they all start within two claims'
# time (~10 ms for no-op jobs).
PREFETCH_CAP = 450
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
        jobs: dict[int, RunningJob],
        *,
        worker_id: str,
        concurrency: int,
        lease: float,
        poll_interval: float,
        forbidden_flags: ForbiddenFlags,
        start_job: Callable[[asyncpg.Record, RunningJob], None],
        release_job: Callable[[asyncpg.Record, RunningJob], None],
        wait_for_space: Callable[[], Awaitable[None]],
    ) -> None:
        self._db = db
        self._queries = queries
        self._kinds = tasks.kinds
        self._defaults = tasks.default_max_attempts()
        self._jobs = jobs
        self._worker_id = worker_id
        self._concurrency = concurrency
        self._lease = lease
        self._poll_interval = poll_interval
        self._forbidden = forbidden_flags
        self._start_job = start_job
        self._release_job = release_job
        self._wait_for_space = wait_for_space
        self._ready: collections.deque[tuple[asyncpg.Record, RunningJob]] = collections.deque()
        self._claim_time = 0.0  # moving averages (seconds), for the prefetch
        self._job_time: float | None = None
        self._cost = 0.0  # the worker's CPU seconds per finished job (all in: loop, completer)
        self._cost_mark = (time.process_time(), 0)
        self.finished = 0  # jobs whose slot was freed
        self._wake = anyio.Event()
        self._slot_freed = asyncio.Event()  # hot path: plain asyncio, no backend lookup
        self._stop = anyio.Event()
        self._timer_at: float | None = None
        self._empty_wakes = 0  # claims in a row woken by a notification that found nothing
        self._claimed_at = 0.0
        self.active = 0  # handlers running (slots in use)
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

    def slot_freed(self, duration: float) -> None:
        self.active -= 1
        t = self._job_time
        self._job_time = duration if t is None else t + (duration - t) * EWMA
        self.finished += 1
        self._slot_freed.set()  # the producer is the only waiter; it clears before waiting
        if self._gated:  # a limit may have held jobs back: a slot of the kind may be free now
            self._wake.set()

    def take_next(self) -> tuple[asyncpg.Record, RunningJob] | None:
        """The next job claimed ahead, for the runner whose job just ended (its slot is taken
        again at once); None if none waits."""
        while self._ready and not self._stop.is_set():
            row, job = self._ready.popleft()
            if job.reason is not None:  # lease lost or cancel requested while it waited
                self._release_job(row, job)
                continue
            if time.monotonic() - job.claimed_at > self._lease / 2:
                # claimed ahead for longer than half a lease (jobs slowed down, or the loop
                # stalled): given back for any worker, not held here
                self._release_job(row, job)
                continue
            self.active += 1
            return row, job
        return None

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()
        self._slot_freed.set()
        self._release_ready()

    def _release_ready(self) -> None:
        """Give back the jobs claimed ahead and not started (attempt not counted)."""
        while self._ready:
            self._release_job(*self._ready.popleft())

    def _prefetch(self) -> int:
        """Jobs that finish while one claim runs (Little's law): a claim's time over the time
        between two jobs finishing. That is the job time over the concurrency, or, for jobs
        shorter than what running one costs the worker's CPU, that cost."""
        if self._job_time is None:
            return 0
        spacing = max(self._job_time / self._concurrency, self._cost, 1e-6)
        ahead = 2 * self._claim_time / spacing  # twice: a claim shares the CPU with the jobs
        return min(max(self._concurrency, PREFETCH_CAP), int(ahead))

    def _measure_cost(self) -> None:
        cpu, finished = time.process_time(), self.finished
        last_cpu, last_finished = self._cost_mark
        if finished - last_finished >= 20:  # enough jobs for the process clock's resolution
            cost = (cpu - last_cpu) / (finished - last_finished)
            self._cost += (cost - self._cost) * EWMA
            self._cost_mark = (cpu, finished)

    def _half_room(self) -> int:
        return max(1, (self._concurrency + self._prefetch() + 1) // 2)

    def _free(self) -> int:
        """Jobs to claim now: the free slots plus the prefetch, minus those already waiting."""
        return self._concurrency + self._prefetch() - self.active - len(self._ready)

    @property
    def stopping(self) -> bool:
        return self._stop.is_set()

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
            self._release_ready()  # stopped, failed or cancelled: nothing stays claimed here

    async def _loop(self, until_empty: bool, wait_idle: Callable[[], Awaitable[None]]) -> None:
        backlog = True  # the first claim happens at once
        while not self._stop.is_set():
            woken = False
            if backlog:
                await self._wait_for_slots()
            else:
                woken = await self._wait_for_wake()
            if self._stop.is_set():
                return
            free = self._free()
            if free <= 0:
                backlog = True
                continue
            if backlog:  # half the room: the next claim goes out while these jobs run
                free = min(free, self._half_room())
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
                if self.active == 0:
                    # Outcomes still being written may make jobs due again (retries, releases).
                    await wait_idle()
                    if await self._claim(free) == 0 and self.active == 0:
                        return
                else:
                    await self._wait_any_slot()
                backlog = True

    async def _wait_any_slot(self) -> None:
        self._slot_freed.clear()
        await self._slot_freed.wait()

    async def _claim(self, free: int) -> int:
        self._wake = anyio.Event()  # notifications from now on trigger another claim
        started = time.monotonic()
        try:
            conn = await self._db.get()
            if started - self._gated_at >= GATED_REFRESH:
                self._gated = await self._queries.flow_gated_kinds(conn, kinds=self._kinds)
                self._gated_at = started
            forbidden = await self._forbidden_flags()
            rows: list[asyncpg.Record] = []
            async with self._db.transaction(conn):
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
        except Exception:
            self._db.invalidate()  # whatever broke, the next claim starts on a fresh connection
            raise
        self.claims += 1
        self._db.outage.recovered("producer")
        self._claimed_at = anyio.current_time()
        self._claim_time += (self._claimed_at - started - self._claim_time) * EWMA
        self._measure_cost()
        deadline = started + self._lease - lease_margin(self._lease)
        for row in rows:
            job = RunningJob(
                row["id"],
                row["kind"],
                row["lease_token"],
                row["attempts"],
                claimed_at=started,
                deadline=deadline,
            )
            self._jobs[job.id] = job
            if self.active < self._concurrency:
                self.active += 1
                self._start_job(row, job)
            else:
                self._ready.append((row, job))
        return len(rows)

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
        half = self._half_room()
        if self._free() >= half:
            return
        while self._free() <= 0 and not self._stop.is_set():
            self._slot_freed.clear()
            await self._slot_freed.wait()
        with anyio.move_on_after(FETCH_COOLDOWN):
            while self._free() < half and not self._stop.is_set():
                self._slot_freed.clear()
                await self._slot_freed.wait()
