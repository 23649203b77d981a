"""Worker: the consumer's composition root. Builds the services and owns their lifetimes; no
job passes through it (the foreman owns the running jobs: _consumer/foreman.py).

Start order: notifier → completer → progress → heartbeat → rescuer → scheduler → pruner, then
the producer, which hands claimed jobs to the foreman. Stop is two-phase: stop claiming, wait
for running jobs up to the timeout, then cancel them (they go back to ``pending`` with the
attempt given back); services then stop in reverse order, so the completer's final, shielded
flush records every outcome. The worker's row in the workers table (its kinds, for ``aioqueue
status``) is written before the services start and deleted after they stop.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import os
import secrets
import socket
from collections.abc import Sequence
from contextlib import AsyncExitStack
from typing import Any

import anyio

from . import _flow, config
from ._clock import Clock
from ._consumer.completer import Completer
from ._consumer.executor import Executor
from ._consumer.foreman import Foreman
from ._consumer.heartbeat import Heartbeat
from ._consumer.job_events import JobEvents
from ._consumer.producer import ForbiddenFlags, Producer
from ._consumer.progress import JobAccessService
from ._consumer.registration import Registration
from ._consumer.wakeups import Wakeups
from ._db.connect import Dedicated, Outage
from ._db.errors import TRANSIENT
from ._db.migrate import check_schema
from ._maintenance.pruner import Pruner
from ._maintenance.rescuer import Rescuer
from ._maintenance.scheduler import Scheduler
from ._notifier import Notifier, dedicated, from_pool
from ._service import Service, running
from .config import WorkerConfig as WorkerConfig  # its home is config; importable from here too
from .errors import ConfigurationError
from .events import Hooks, Subscriber, log_event
from .queue import Queue
from .tasks import Tasks

_log = logging.getLogger("aioqueue.worker")
# The claim connection's session. synchronous_commit: see Dedicated. plan_cache_mode: the
# claim's custom plans never look cheaper than its generic one to the plan cache, so otherwise
# every claim is planned anew (costing as much server CPU as claiming 50 jobs). jit: the
# generic plan guesses a tenth of the due jobs per LIMIT and is costed over jit_above_cost on a
# big backlog; with JIT on (Debian, Docker, RDS) every claim was compiled, which took many
# times longer than the claim itself (figures: benchmarks/RESULTS.md).
CLAIM_SESSION = {
    "jit": "off",
    "synchronous_commit": "off",
    "plan_cache_mode": "force_generic_plan",
}
# Behind a transaction pooler the claim sets these for its own transaction instead (its
# unnamed statement is planned for its parameters each time, so plan_cache_mode is moot).
CLAIM_TRANSACTION = {"jit": "off", "synchronous_commit": "off"}


@dataclasses.dataclass
class _Built:
    foreman: Foreman
    producer: Producer
    completer: Completer
    claim_db: Dedicated
    registration: Registration
    services: list[Service]  # in start order


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
        self._events = JobEvents(self.hooks, self.id)
        self._foreman: Foreman | None = None
        self._producer: Producer | None = None
        self._heartbeat: Heartbeat | None = None
        self._notifier: Notifier | None = None
        self._stop_requested = anyio.Event()
        self._stop_timeout: float | None = None
        self._stopped = anyio.Event()
        self._running = False
        # one warning when the database stops answering, one when it is back
        self._outage = Outage()

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
        return sorted(self._foreman.jobs) if self._foreman is not None else []

    # -- lifetimes ---------------------------------------------------------------------------

    async def _run(self, until_empty: bool) -> None:
        built = self._build()
        foreman, producer, completer = built.foreman, built.producer, built.completer
        if self._stop_requested.is_set():
            producer.stop()
        async with AsyncExitStack() as stack:
            await self._start(stack, built)
            try:
                await producer.run(until_empty=until_empty, wait_idle=completer.wait_idle)
                timeout = self.config.stop_timeout
                await foreman.drain(timeout if self._stop_timeout is None else self._stop_timeout)
                if until_empty:
                    await completer.wait_idle()
            finally:
                # Also on a hard stop (run() cancelled): every job still running is cancelled
                # and released before the completer's final flush.
                with anyio.CancelScope(shield=True):
                    await foreman.cancel_all()
                self._events.worker("worker_stopped")
        if foreman.released:
            # Tell the other workers at once instead of leaving it to their next poll.
            with anyio.CancelScope(shield=True), anyio.move_on_after(2):
                with contextlib.suppress(*TRANSIENT):
                    await self.queue.queries.notify_wake(self.queue.pool)
        _log.info("worker %s: stopped", self.id)

    async def _start(self, stack: AsyncExitStack, built: _Built) -> None:
        """Everything but the producer, in start order; stopped in reverse by ``stack``."""
        stack.push_async_callback(_shielded_close, built.claim_db)
        await built.registration.register()  # for `aioqueue status`: the kinds this worker runs
        await _flow.declare(self.queue.pool, self.queue.queries, self.tasks)  # before a claim
        stack.push_async_callback(built.registration.deregister)  # after the heartbeat stops
        for service in built.services:
            await stack.enter_async_context(running(service))
        self._events.worker("worker_started")
        _log.info(
            "worker %s: started (%d kinds, concurrency %d)",
            self.id,
            len(self.tasks),
            self.config.concurrency,
        )

    def _request_stop(self) -> None:
        """A handler raised KeyboardInterrupt or SystemExit: the worker stops."""
        self._stop_requested.set()
        if self._producer is not None:
            self._producer.stop()

    # -- building ----------------------------------------------------------------------------

    def _build(self) -> _Built:
        q, cfg = self.queue, self.config
        completer = Completer(
            q.pool,
            q.queries,
            flush_interval=cfg.flush_interval,
            flush_size=cfg.flush_size,
            outage=self._outage,
        )
        access = JobAccessService(q.pool, q.queries)
        executor = Executor(
            self.tasks,
            access=access,
            worker_id=self.id,
            state=self.state,
            hooks=self.hooks,
            max_result_bytes=cfg.max_result_bytes,
            abandoned=completer.put,
            request_stop=self._request_stop,
            stuck_grace=cfg.stuck_grace,
        )
        foreman = self._foreman = Foreman(
            executor,
            completer,
            self._events,
            worker_id=self.id,
            concurrency=cfg.concurrency,
            lease=cfg.lease,
            stuck_grace=cfg.stuck_grace,
        )
        claim_db = self._claim_db()
        producer = self._producer = Producer(
            claim_db,
            q.queries,
            self.tasks,
            foreman,
            worker_id=self.id,
            lease=cfg.lease,
            poll_interval=cfg.poll_interval,
            forbidden_flags=self._forbidden,
            wait_for_space=completer.wait_for_space,
        )
        registration = Registration(q.pool, q.queries, worker_id=self.id, kinds=self.tasks.kinds)
        heartbeat = self._heartbeat = Heartbeat(
            q.pool,
            q.queries,
            foreman,
            interval=min(cfg.heartbeat, config.WORKER_TOUCH_INTERVAL),  # keeps the row live
            lease=cfg.lease,
            touch=registration.touch,
            outage=self._outage,
        )
        listener = self._listener(Wakeups(producer, heartbeat))
        services = [*listener, completer, access, heartbeat, *self._maintenance()]
        return _Built(foreman, producer, completer, claim_db, registration, services)

    def _claim_db(self) -> Dedicated:
        q = self.queue
        return Dedicated(
            None if q.transaction_pooling else q.dsn,  # behind a pooler: no session of its own
            q.pool,
            application_name=f"aioqueue-claim:{self.id}",
            settings=CLAIM_TRANSACTION if q.transaction_pooling else CLAIM_SESSION,
            outage=self._outage,
            per_transaction=q.transaction_pooling,
        )

    def _listener(self, wakeups: Wakeups) -> list[Service]:
        """The LISTEN connection's service (none with ``listen=False``)."""
        q, cfg = self.queue, self.config
        if not cfg.listen:
            return []
        connection = (
            dedicated(q.dsn, f"aioqueue-listener:{self.id}") if q.dsn else from_pool(q.pool)
        )
        notifier = self._notifier = wakeups.notifier = Notifier(
            connection,
            q.queries,
            q.config.channel,
            on_notify=wakeups,
            on_reconnect=wakeups.producer_wake,
            backoff_start=min(0.1, cfg.poll_interval),
            backoff_max=min(2.0, cfg.lease / 2),
            outage=self._outage,
        )
        return [notifier]

    def _maintenance(self) -> list[Service]:
        q, cfg = self.queue, self.config
        rescuer = Rescuer(
            q.pool,
            q.queries,
            interval=cfg.rescue_interval,
            on_rescued=self._events.rescued,
            transient=TRANSIENT,
        )
        scheduler = self.scheduler = Scheduler(
            q.pool, q.queries, self.tasks.crons, clock=self._clock, transient=TRANSIENT
        )
        pruner = self.pruner = Pruner(
            q.pool,
            q.queries,
            interval=cfg.prune_interval,
            transient=TRANSIENT,
            retention={
                "completed": cfg.retention,
                "failed": cfg.failed_retention,
                "cancelled": cfg.cancelled_retention,
            },
            forget_workers_after=config.WORKER_FORGET_AFTER,
            move_after=cfg.history_move_after,
        )
        return [rescuer, scheduler, pruner]


def _leaves(group: BaseExceptionGroup[BaseException]) -> list[BaseException]:
    out: list[BaseException] = []
    for exc in group.exceptions:
        out.extend(_leaves(exc) if isinstance(exc, BaseExceptionGroup) else [exc])
    return out


async def _shielded_close(db: Dedicated) -> None:
    with anyio.CancelScope(shield=True), anyio.move_on_after(2):
        await db.close()
