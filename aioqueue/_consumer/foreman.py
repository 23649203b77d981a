"""Foreman: owns every job this worker holds, from its claim until its outcome is written.

    producer ──claimed rows──► foreman ──one job──► executor ──Outcome──► foreman ──► completer
                                  ▲                                                    │
                                  └───────────── flushed(batch, accepted) ─────────────┘

It keeps the job table (claimed ahead, running, or waiting for its outcome's flush; the
heartbeat renews leases from ``snapshot()``), the slot count, the jobs claimed ahead
(``ready``), the runner tasks, lease deadlines, and what a stop does: no job starts any more,
the ready ones go back unstarted, the running ones are waited for, then cancelled.

Claiming ahead: jobs that finish faster than a claim takes wait in ``ready`` (claimed, leased,
not started) and start the moment a slot frees, so a claim's round trip overlaps running jobs.
How many is Little's law (``_prefetch``). Jobs that run long get none, so a busy worker never
sits on jobs an idle one could run.

Concurrency model: the hot path is plain asyncio, and only here. One long-lived asyncio Task
per busy slot (a runner) runs job after job; when its job ends it takes the next ready job at
once, or parks on a future the next claimed job is handed through. A Task (or an anyio task
group spawn) per job cost the worker about a third of its CPU on short jobs (its first step
and done callback through the loop, the task registry: benchmarks/RESULTS.md). Each job still
runs in its own copy of the context (``_InContext``), as it would in its own Task: context
variables a handler sets never reach the next job. Everything else (the producer's loop, the
completer, the heartbeat) is an anyio service under the worker's task groups.
"""

from __future__ import annotations

import asyncio
import collections
import contextvars
import logging
import time
from collections.abc import Callable, Coroutine, Generator
from typing import Any

import asyncpg

from .completer import Completer
from .executor import Executor
from .job_events import JobEvents
from .outcome import Outcome
from .running import RunningJob, lease_margin

_log = logging.getLogger("aioqueue.worker")

Next = tuple[asyncpg.Record, RunningJob]
EWMA = 0.2  # weight of the newest sample in the claim and job time averages
# Jobs claimed ahead are at most this many (or the concurrency, if higher): only jobs that
# take the worker far less than a claim get that many, and they all start within two claims'
# time.
PREFETCH_CAP = 450


def _nothing() -> None:
    pass


class Foreman:
    def __init__(
        self,
        executor: Executor,
        completer: Completer,
        events: JobEvents,
        *,
        worker_id: str,
        concurrency: int,
        lease: float,
        stuck_grace: float,
    ) -> None:
        self._executor = executor
        self._completer = completer
        completer.on_flushed = self.flushed  # the foreman hears which outcomes were written
        self._events = events
        self._worker_id = worker_id
        self._concurrency = concurrency
        self._lease = lease
        self._stuck_grace = stuck_grace
        self.jobs: dict[int, RunningJob] = {}
        self.active = 0  # slots in use (jobs handed to a runner)
        self.finished = 0  # jobs whose slot was freed
        self.released = 0  # flushes that gave jobs back (the worker tells the others at stop)
        self._ready: collections.deque[Next] = collections.deque()
        self._slot_freed = asyncio.Event()  # hot path: plain asyncio, no backend lookup
        self.wake_producer: Callable[[], None] = _nothing
        self.wake_on_free = False  # the producer holds jobs back behind flow limits
        # moving averages (seconds) for the prefetch; cost: the worker's CPU per finished job
        self._claim_time = 0.0
        self._job_time: float | None = None
        self._cost = 0.0
        self._cost_mark = (time.process_time(), 0)
        self.tasks: set[asyncio.Task[None]] = set()  # the runners
        self._parked: list[asyncio.Future[Next | None]] = []
        self._closed = False  # no job starts any more: parked runners end
        self._hard = False  # cancel_all: busy runners end too

    # -- the producer's side -----------------------------------------------------------------

    def free(self) -> int:
        """Jobs to claim now: the free slots plus the prefetch, minus those already waiting."""
        return self._concurrency + self._prefetch() - self.active - len(self._ready)

    def half_room(self) -> int:
        return max(1, (self._concurrency + self._prefetch() + 1) // 2)

    async def slot_freed(self) -> None:
        """Until a slot frees (or the foreman closes)."""
        if self._closed:
            return
        self._slot_freed.clear()  # the producer is the only waiter
        await self._slot_freed.wait()

    def claimed(self, rows: list[asyncpg.Record], *, sent: float, took: float) -> None:
        """Take over a claim's jobs (``sent``: when the claim went out, monotonic time): start
        them while slots are free, the rest wait in ``ready``."""
        self._claim_time += (took - self._claim_time) * EWMA
        self._measure_cost()
        deadline = sent + self._lease - lease_margin(self._lease)
        for row in rows:
            job = RunningJob(
                row["id"],
                row["kind"],
                row["lease_token"],
                row["attempts"],
                claimed_at=sent,
                deadline=deadline,
            )
            self.jobs[job.id] = job
            if self.active < self._concurrency:
                self.active += 1
                self._start(row, job)
            else:
                self._ready.append((row, job))

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

    # -- runners -----------------------------------------------------------------------------

    def _start(self, row: asyncpg.Record, job: RunningJob) -> None:
        """Run ``job`` now: on a parked runner, or a new one (the caller took the slot)."""
        while self._parked:
            parked = self._parked.pop()
            if not parked.done():
                parked.set_result((row, job))
                return
        task = asyncio.get_running_loop().create_task(self._run((row, job)))
        self.tasks.add(task)
        task.add_done_callback(self._ended)

    async def _run(self, first: Next) -> None:
        task = asyncio.current_task()
        assert task is not None
        loop = task.get_loop()
        current: Next | None = first
        while current is not None:
            row, job = current
            job.task = task
            outcome: Outcome | None = None
            try:
                outcome = await _InContext(self._executor.run(row, job), contextvars.copy_context())
            except Exception:
                _log.exception("worker %s: executor failed", self._worker_id)
            finally:
                job.task = None
            self._finished(job, outcome)
            if self._hard or (job.reason is None and task.cancelling()):
                # the worker's stop (or the loop's shutdown), not a cancel meant for this job
                # (those have a reason): the executor gave the job back; this runner ends
                return
            while task.cancelling():
                task.uncancel()  # that job's cancel request was handled
            current = self._take_next()
            if current is None and not self._closed:
                parked: asyncio.Future[Next | None] = loop.create_future()
                self._parked.append(parked)
                current = await parked

    def _finished(self, job: RunningJob, outcome: Outcome | None) -> None:
        if outcome is not None:
            self._completer.put(outcome)
        self.active -= 1
        t, duration = self._job_time, job.duration
        self._job_time = duration if t is None else t + (duration - t) * EWMA
        self.finished += 1
        self._slot_freed.set()
        if self.wake_on_free:  # a limit may have held jobs back: one of the kind may run now
            self.wake_producer()

    def _take_next(self) -> Next | None:
        """The next job claimed ahead, for the runner whose job just ended (its slot is taken
        again at once); None if none waits."""
        while self._ready and not self._closed:
            row, job = self._ready.popleft()
            if job.reason is not None:  # lease lost or cancel requested while it waited
                self._give_back(job)
                continue
            if time.monotonic() - job.claimed_at > self._lease / 2:
                # claimed ahead for longer than half a lease (jobs slowed down, or the loop
                # stalled): given back for any worker, not held here
                self._give_back(job)
                continue
            self.active += 1
            return row, job
        return None

    def _ended(self, task: asyncio.Task[None]) -> None:
        self.tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            _log.error("worker %s: runner failed", self._worker_id, exc_info=task.exception())

    def _give_back(self, job: RunningJob) -> None:
        outcome = self._executor.unstarted(job)
        if outcome is not None:
            self._completer.put(outcome)

    # -- the completer's and the heartbeat's side --------------------------------------------

    def flushed(self, batch: list[Outcome], accepted: set[int]) -> None:
        """The completer wrote ``batch``; the database took the outcomes in ``accepted``."""
        released = False
        jobs, events = self.jobs, self._events
        for outcome in batch:
            job = jobs.get(outcome.id)
            if job is not None and job.lease_token == outcome.lease_token:
                del jobs[outcome.id]
            if outcome.id in accepted:
                released = released or outcome.state == "pending"
                if events.hooks:  # per job: no call at all when nobody listens
                    events.written(outcome)
            else:
                events.rejected(outcome)
        if released:
            self.released += 1
            if not self._closed:
                self.wake_producer()

    def snapshot(self) -> list[RunningJob]:
        return list(self.jobs.values())

    def leases_confirmed(
        self, snapshot: list[RunningJob], ours: dict[int, bool], sent: float
    ) -> None:
        """A heartbeat sent at ``sent`` renewed the leases of ``ours`` (job id: cancellation
        requested) among ``snapshot``; the others are lost: their handlers are cancelled."""
        deadline = sent + self._lease - lease_margin(self._lease)
        for job in snapshot:
            if self.jobs.get(job.id) is not job:
                continue  # flushed meanwhile
            if job.id not in ours:
                if not job.done:
                    job.stop("lease_lost")
                    del self.jobs[job.id]
                    self._events.lease_lost(job)
            else:
                job.deadline = deadline  # renewed: the lease holds a while longer
                if ours[job.id]:
                    job.stop("cancel_requested")

    # -- stopping ----------------------------------------------------------------------------

    def close(self) -> None:
        """No job starts any more: the ready ones are given back (attempt not counted), parked
        runners end, busy ones after their job."""
        self._closed = True
        self._slot_freed.set()
        self.release_ready()
        parked, self._parked = self._parked, []
        for future in parked:
            if not future.done():
                future.set_result(None)

    def release_ready(self) -> None:
        while self._ready:
            self._give_back(self._ready.popleft()[1])

    async def drain(self, timeout: float) -> None:
        """Close, wait up to ``timeout`` for the running jobs, then cancel what still runs."""
        self.close()
        busy = [t for t in self.tasks if not t.done()]
        if busy:
            await asyncio.wait(busy, timeout=timeout)
        await self.cancel_all()

    async def cancel_all(self) -> None:
        """Cancel every runner (their jobs are given back). A handler that swallows the
        cancellation is abandoned after ``stuck_grace``: its outcome is never recorded, its
        lease expires and it is rescued."""
        self.close()
        self._hard = True
        busy = [t for t in self.tasks if not t.done()]
        for task in busy:
            task.cancel()
        if not busy:
            return
        _, stuck = await asyncio.wait(busy, timeout=self._stuck_grace)
        for job in self.jobs.values():
            if job.task in stuck:
                _log.error(
                    "worker %s: job %s (%s) ignored cancellation; abandoned (it will be "
                    "rescued when its lease expires)",
                    self._worker_id,
                    job.id,
                    job.kind,
                )


class _InContext:
    """Awaits ``coro`` with every step run inside ``ctx``, the way a Task runs its coroutine."""

    __slots__ = ("_coro", "_ctx")

    def __init__(self, coro: Coroutine[Any, Any, Any], ctx: contextvars.Context) -> None:
        self._coro = coro
        self._ctx = ctx

    def __await__(self) -> Generator[Any, Any, Any]:
        coro, run = self._coro, self._ctx.run
        step: Callable[..., Any] = coro.send
        arg: Any = None
        while True:
            try:
                yielded = run(step, arg)
            except StopIteration as done:
                return done.value
            try:
                arg = yield yielded
                step = coro.send
            except GeneratorExit:
                coro.close()
                raise
            except BaseException as exc:  # thrown in by the Task (cancellation): pass it on
                step, arg = coro.throw, exc
