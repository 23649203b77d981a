"""Worker: the consumer pool's composition root. Wires the services and owns their lifetimes.

Start order: notifier → completer → heartbeat → rescuer → scheduler → pruner, then the
producer, which hands claimed jobs to the runners (a task per busy slot, job after job). Stop
is two-phase: stop claiming, wait for running jobs up to the timeout, then cancel them (they go
back to ``pending`` with the attempt given back); services then stop in reverse order, so the
completer's final, shielded flush records every outcome. The worker's row in the workers
table (its kinds, for ``aioqueue status``) is written before the services start and deleted
after they stop.
"""

from __future__ import annotations

import contextlib
import logging
import os
import secrets
import socket
from collections.abc import Coroutine, Sequence
from contextlib import AsyncExitStack
from typing import Any

import anyio
import asyncpg
import msgspec

from . import _flow, _wake, config
from ._consumer.completer import TRANSIENT, Completer
from ._consumer.executor import Executor
from ._consumer.heartbeat import Heartbeat
from ._consumer.outcome import Outcome
from ._consumer.producer import ForbiddenFlags, Producer
from ._consumer.progress import JobAccessService
from ._consumer.registration import Registration
from ._consumer.runners import Runners
from ._consumer.running import RunningJob
from ._db.connect import Dedicated, Outage
from ._db.migrate import check_schema
from ._maintenance.pruner import Pruner
from ._maintenance.rescuer import Rescuer
from ._maintenance.scheduler import Clock, Scheduler
from ._notifier import Notifier, dedicated, from_pool
from ._service import Service, running
from .errors import ConfigurationError
from .events import Event, Hooks, Subscriber, log_event
from .queue import Queue
from .tasks import Tasks

_log = logging.getLogger("aioqueue.worker")
# The claim connection's session. synchronous_commit: see Dedicated. plan_cache_mode: the
# claim's custom plans never look cheaper than its generic one to the plan cache, so otherwise
# every claim is planned anew (about 1 ms of server CPU, as much as claiming 50 jobs). jit: the
# generic plan guesses a tenth of the due jobs per LIMIT and is costed over jit_above_cost on a
# big backlog; with JIT on (Debian, Docker, RDS) every claim was compiled, ~30 ms for < 1 ms.
CLAIM_SESSION = {
    "jit": "off",
    "synchronous_commit": "off",
    "plan_cache_mode": "force_generic_plan",
}
# Behind a transaction pooler the claim sets these for its own transaction instead (its
# unnamed statement is planned for its parameters each time, so plan_cache_mode is moot).
CLAIM_TRANSACTION = {"jit": "off", "synchronous_commit": "off"}

_OUTCOME_EVENTS: dict[str, Any] = {
    "completed": "completed",
    "scheduled": "retried",
    "failed": "failed",
    "pending": "released",
    "cancelled": "cancelled",
}


class WorkerConfig(msgspec.Struct, frozen=True, kw_only=True):
    """Consumer settings, validated once. Durations are seconds."""

    concurrency: int = config.DEFAULT_CONCURRENCY
    poll_interval: float = config.DEFAULT_POLL_INTERVAL
    lease: float = config.DEFAULT_LEASE
    # default: lease / 3, at most 5 s; capped at config.WORKER_TOUCH_INTERVAL (the workers row)
    heartbeat_interval: float | None = None
    rescue_interval: float = config.DEFAULT_RESCUE_INTERVAL
    stop_timeout: float = config.DEFAULT_STOP_TIMEOUT
    flush_interval: float = config.DEFAULT_FLUSH_INTERVAL
    flush_size: int = config.DEFAULT_FLUSH_SIZE
    max_result_bytes: int = config.DEFAULT_MAX_RESULT_BYTES
    retention: float | None = config.DEFAULT_RETENTION  # completed jobs; None keeps them
    failed_retention: float | None = config.DEFAULT_FAILED_RETENTION
    cancelled_retention: float | None = config.DEFAULT_FAILED_RETENTION
    prune_interval: float = config.DEFAULT_PRUNE_INTERVAL
    stuck_grace: float = 5.0  # how long a cancelled handler may ignore it before it is abandoned
    # False: no LISTEN connection (e.g. behind PgBouncer in transaction pooling); jobs are found
    # by polling every poll_interval, cancellations of running jobs at the next heartbeat
    listen: bool = True

    def __post_init__(self) -> None:
        if not isinstance(self.concurrency, int) or self.concurrency < 1:
            raise ConfigurationError(
                f"concurrency must be an integer >= 1, got {self.concurrency!r}"
            )
        for name in (
            "poll_interval",
            "lease",
            "rescue_interval",
            "flush_interval",
            "prune_interval",
            "stuck_grace",
        ):
            value = getattr(self, name)
            if not isinstance(value, int | float) or not value > 0:
                raise ConfigurationError(f"{name} must be a positive number of seconds")
        if self.stop_timeout < 0:
            raise ConfigurationError("stop_timeout must be >= 0")
        if self.heartbeat_interval is not None and not 0 < self.heartbeat_interval < self.lease:
            raise ConfigurationError("heartbeat_interval must be positive and below the lease")
        for name in ("retention", "failed_retention", "cancelled_retention"):
            value = getattr(self, name)
            if value is not None and (not isinstance(value, int | float) or value < 0):
                raise ConfigurationError(f"{name} must be seconds >= 0, or None to keep jobs")
        if self.flush_size < 1 or self.max_result_bytes < 1:
            raise ConfigurationError("flush_size and max_result_bytes must be >= 1")

    @property
    def heartbeat(self) -> float:
        return self.heartbeat_interval or min(self.lease / 3, 5.0)


class Worker:
    """Runs the handlers of ``tasks`` for jobs in ``queue``::

    worker = aioqueue.Worker(q, tasks, concurrency=50)
    task = asyncio.create_task(worker.run())   # or: await worker.run(until_empty=True)
    await worker.stop(timeout=30)
    """

    def __init__(
        self,
        queue: Queue,
        tasks: Tasks,
        *,
        concurrency: int = config.DEFAULT_CONCURRENCY,
        forbidden_flags: ForbiddenFlags = None,
        state: Any = None,
        hooks: Sequence[Subscriber] = (),
        worker_id: str | None = None,
        clock: Clock | None = None,
        **settings: Any,
    ) -> None:
        if not len(tasks):
            raise ConfigurationError("the Tasks registry is empty: register at least one task")
        try:
            self.config = WorkerConfig(concurrency=concurrency, **settings)
        except TypeError as exc:
            raise ConfigurationError(str(exc)) from None
        if queue.transaction_pooling and self.config.listen:
            raise ConfigurationError(
                "the Queue is behind a transaction pooler (transaction_pooling=True), where "
                "LISTEN cannot work: create the Worker with listen=False (it then polls every "
                "poll_interval)"
            )
        self.queue = queue
        self.tasks = tasks
        self.state = state
        self.hooks = Hooks(list(hooks))
        if logging.getLogger("aioqueue.job").isEnabledFor(logging.INFO):
            self.hooks.subscribe(log_event)  # cheap when logging is off: not subscribed at all
        self.id = worker_id or f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(3)}"
        self._forbidden = forbidden_flags
        self._clock = clock
        self._jobs: dict[int, RunningJob] = {}
        self._producer: Producer | None = None
        self._completer: Completer | None = None
        self._heartbeat: Heartbeat | None = None
        self._notifier: Notifier | None = None
        self._stop_requested = anyio.Event()
        self._stop_timeout: float | None = None
        self._stopped = anyio.Event()
        self._running = False
        self._released = 0
        # one warning when the database stops answering, one when it is back
        self._outage = Outage()
        self._runners: Runners | None = None

    # -- public ------------------------------------------------------------------------------

    async def run(self, *, until_empty: bool = False) -> None:
        """Run until ``stop()`` (or, with ``until_empty``, until no due job is left)."""
        if self._running:
            raise RuntimeError("this Worker is already running")
        self._running = True
        self._stopped = anyio.Event()
        try:
            await check_schema(self.queue.pool, self.queue.config.schema)
            await self._run(until_empty)
        except BaseExceptionGroup as group:
            # Each service runs in its own task group; surface a lone error as itself.
            leaves = _leaves(group)
            if len(leaves) == 1:
                raise leaves[0] from None
            raise
        finally:
            self._running = False
            self._stopped.set()

    async def stop(self, timeout: float | None = None) -> None:
        """Graceful stop: no more claims; wait up to ``timeout`` for running jobs, then cancel
        them (released to ``pending``, attempt given back). Returns once the worker is down."""
        self._stop_timeout = timeout
        self._stop_requested.set()
        if self._producer is not None:
            self._producer.stop()
        if self._running:
            await self._stopped.wait()

    @property
    def running_jobs(self) -> list[int]:
        return sorted(self._jobs)

    # -- wiring ------------------------------------------------------------------------------

    async def _run(self, until_empty: bool) -> None:
        q, cfg = self.queue, self.config
        pool = q.pool
        completer = self._completer = Completer(
            pool,
            q.queries,
            on_flushed=self._on_flushed,
            flush_interval=cfg.flush_interval,
            flush_size=cfg.flush_size,
            outage=self._outage,
        )
        claim_db = Dedicated(
            None if q.transaction_pooling else q.dsn,  # behind a pooler: no session of its own
            pool,
            application_name=f"aioqueue-claim:{self.id}",
            settings=CLAIM_TRANSACTION if q.transaction_pooling else CLAIM_SESSION,
            outage=self._outage,
            per_transaction=q.transaction_pooling,
        )
        producer = self._producer = Producer(
            claim_db,
            q.queries,
            self.tasks,
            self._jobs,
            worker_id=self.id,
            concurrency=cfg.concurrency,
            lease=cfg.lease,
            poll_interval=cfg.poll_interval,
            forbidden_flags=self._forbidden,
            start_job=self._start_job,
            release_job=self._release_unstarted,
            wait_for_space=completer.wait_for_space,
        )
        if self._stop_requested.is_set():
            producer.stop()
        registration = Registration(pool, q.queries, worker_id=self.id, kinds=self.tasks.kinds)
        heartbeat = self._heartbeat = Heartbeat(
            pool,
            q.queries,
            self._jobs,
            interval=min(cfg.heartbeat, config.WORKER_TOUCH_INTERVAL),  # keeps the row live
            lease=cfg.lease,
            on_lost=self._on_lease_lost,
            touch=registration.touch,
            outage=self._outage,
        )
        services: list[Service] = []
        if cfg.listen:
            connection = (
                dedicated(q.dsn, f"aioqueue-listener:{self.id}") if q.dsn else from_pool(pool)
            )
            notifier = self._notifier = Notifier(
                connection,
                q.queries,
                q.config.channel,
                on_notify=self._on_notify,
                on_reconnect=producer.wake,
                backoff_start=min(0.1, cfg.poll_interval),
                backoff_max=min(2.0, cfg.lease / 2),
                outage=self._outage,
            )
            services.append(notifier)
        rescuer = Rescuer(
            pool,
            q.queries,
            interval=cfg.rescue_interval,
            on_rescued=self._on_rescued,
            transient=TRANSIENT,
        )
        scheduler = self.scheduler = Scheduler(
            pool,
            q.queries,
            self.tasks.crons,
            clock=self._clock,
            transient=TRANSIENT,
        )
        pruner = self.pruner = Pruner(
            pool,
            q.queries,
            interval=cfg.prune_interval,
            transient=TRANSIENT,
            retention={
                "completed": cfg.retention,
                "failed": cfg.failed_retention,
                "cancelled": cfg.cancelled_retention,
            },
            forget_workers_after=config.WORKER_FORGET_AFTER,
        )
        access = JobAccessService(pool, q.queries)
        self._executor = Executor(
            self.tasks,
            access=access,
            worker_id=self.id,
            state=self.state,
            hooks=self.hooks,
            max_result_bytes=cfg.max_result_bytes,
            put=completer.put,
            request_stop=self._request_stop,
            stuck_grace=cfg.stuck_grace,
        )
        self._runners = Runners(
            execute=self._execute, take_next=producer.take_next, worker_id=self.id
        )
        async with AsyncExitStack() as stack:
            stack.push_async_callback(_shielded_close, claim_db)
            await registration.register()  # for `aioqueue status`: the kinds this worker runs
            await _flow.declare(pool, q.queries, self.tasks)  # before the first claim
            stack.push_async_callback(registration.deregister)  # after the heartbeat stops
            for service in (*services, completer, access, heartbeat, rescuer, scheduler, pruner):
                await stack.enter_async_context(running(service))
            self._emit(Event(type="worker_started", worker_id=self.id))
            _log.info(
                "worker %s: started (%d kinds, concurrency %d)",
                self.id,
                len(self.tasks),
                cfg.concurrency,
            )
            try:
                await producer.run(until_empty=until_empty, wait_idle=completer.wait_idle)
                await self._drain()
                if until_empty:
                    await completer.wait_idle()
            finally:
                # Also on a hard stop (run() cancelled): every job still running is cancelled
                # and released before the completer's final flush.
                with anyio.CancelScope(shield=True):
                    await self._cancel_jobs()
                self._emit(Event(type="worker_stopped", worker_id=self.id))
        if self._released:
            # Tell the other workers at once instead of leaving it to their next poll.
            with anyio.CancelScope(shield=True), anyio.move_on_after(2):
                with contextlib.suppress(*TRANSIENT):
                    await q.queries.notify_wake(pool)
        _log.info("worker %s: stopped", self.id)

    async def _drain(self) -> None:
        """Phase two of a stop: wait up to the timeout for running jobs, then cancel them."""
        assert self._runners is not None
        timeout = self.config.stop_timeout if self._stop_timeout is None else self._stop_timeout
        await self._runners.drain(timeout)
        await self._cancel_jobs()

    async def _cancel_jobs(self) -> None:
        """Cancel every job still running; a handler that swallows cancellation is abandoned
        after ``stuck_grace`` (its outcome is never recorded; its lease expires and it is
        rescued)."""
        if self._runners is None:
            return
        stuck = await self._runners.cancel_all(self.config.stuck_grace)
        for job in self._jobs.values():
            if job.task in stuck:
                _log.error(
                    "worker %s: job %s (%s) ignored cancellation; abandoned (it will be "
                    "rescued when its lease expires)",
                    self.id,
                    job.id,
                    job.kind,
                )

    def _start_job(self, row: asyncpg.Record, job: RunningJob) -> None:
        assert self._runners is not None
        self._runners.start(row, job)

    def _execute(self, row: asyncpg.Record, job: RunningJob) -> Coroutine[Any, Any, None]:
        assert self._executor is not None
        return self._executor.run(row, job, self._job_finished)

    def _job_finished(self, duration: float) -> None:
        assert self._producer is not None
        self._producer.slot_freed(duration)

    def _release_unstarted(self, row: asyncpg.Record, job: RunningJob) -> None:
        assert self._executor is not None
        assert self._completer is not None
        outcome = self._executor.unstarted(job)
        if outcome is not None:
            self._completer.put(outcome)

    def _request_stop(self) -> None:
        self._stop_requested.set()
        if self._producer is not None:
            self._producer.stop()

    # -- callbacks ---------------------------------------------------------------------------

    def _on_notify(self, payload: str) -> None:
        assert self._producer is not None
        wake = _wake.parse(payload)
        if wake.kind == "due":
            self._producer.wake()
        elif wake.kind == "timer" and self._notifier is not None:
            # the hint is in database time; this host's clock may be off
            self._producer.wake_at(wake.epoch - self._notifier.clock_offset)
        elif wake.kind == "cancel" and self._heartbeat is not None:
            # Never trust the payload: the heartbeat asks the database which jobs to cancel.
            self._heartbeat.poke()

    def _on_flushed(self, batch: list[Outcome], accepted: set[int]) -> None:
        released = False
        for outcome in batch:
            job = self._jobs.get(outcome.id)
            if job is not None and job.lease_token == outcome.lease_token:
                del self._jobs[outcome.id]
            if outcome.id in accepted:
                released = released or outcome.state == "pending"
                if self.hooks:
                    snoozed = outcome.state == "scheduled" and outcome.give_back
                    self._emit(
                        Event(
                            type="snoozed" if snoozed else _OUTCOME_EVENTS[outcome.state],
                            worker_id=self.id,
                            job_id=outcome.id,
                            kind=outcome.kind,
                            attempt=outcome.attempt,
                            error=_error_message(outcome.error),
                            duration=outcome.duration,
                        )
                    )
            else:
                _log.warning(
                    "worker %s: outcome %s of job %s rejected: lease lost (job rescued or "
                    "changed elsewhere)",
                    self.id,
                    outcome.state,
                    outcome.id,
                )
                self._emit(
                    Event(
                        type="completion_rejected",
                        worker_id=self.id,
                        job_id=outcome.id,
                        kind=outcome.kind,
                        attempt=outcome.attempt,
                    )
                )
        if released:
            self._released += 1
            if self._producer is not None and not self._producer.stopping:
                self._producer.wake()

    def _on_lease_lost(self, job: RunningJob) -> None:
        del self._jobs[job.id]
        self._emit(
            Event(
                type="lease_lost",
                worker_id=self.id,
                job_id=job.id,
                kind=job.kind,
                attempt=job.attempt,
            )
        )

    def _on_rescued(self, job_id: int, kind: str, state: str, attempts: int) -> None:
        self._emit(
            Event(type="rescued", worker_id=self.id, job_id=job_id, kind=kind, attempt=attempts)
        )

    def _emit(self, event: Event) -> None:
        if self.hooks:
            self.hooks.emit(event)


def _leaves(group: BaseExceptionGroup[BaseException]) -> list[BaseException]:
    out: list[BaseException] = []
    for exc in group.exceptions:
        out.extend(_leaves(exc) if isinstance(exc, BaseExceptionGroup) else [exc])
    return out


async def _shielded_close(db: Dedicated) -> None:
    with anyio.CancelScope(shield=True), anyio.move_on_after(2):
        await db.close()


def _error_message(error_json: str | None) -> str | None:
    if error_json is None:
        return None
    try:
        value = msgspec.json.decode(error_json)
        return str(value.get("message")) if isinstance(value, dict) else None
    except msgspec.DecodeError:
        return None
