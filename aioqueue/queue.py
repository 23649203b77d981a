"""Queue: the producer and admin facade. Validates and encodes, then calls ``_db.queries``."""

from __future__ import annotations

import datetime as dt
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from pathlib import Path
from types import TracebackType
from typing import Any, Self, TypeVar

import anyio
import asyncpg

from . import _flow, config
from ._admin import AdminMixin
from ._db import connect as _connect
from ._db import migrate as _migrate
from ._db.queries import Added, Executor, Inserted, Queries
from ._flow import FlowMixin
from ._notifier import dedicated, from_pool
from ._read import ReadMixin
from ._read import job_from_row as job_from_row  # aioqueue.queue.job_from_row, as before
from ._spec import encode_one, encode_plain, encode_specs, loose_list
from ._waiter import Waiter
from ._waker import Waker
from ._workflow import WorkflowMixin
from .errors import JobNotFound, WaitTimeout
from .events import Event, Hooks, Subscriber
from .types import (
    EnqueueResult,
    Job,
    JobSpec,
    OnConflict,
    OnParentFailure,
)

_MISSING: Any = object()


_T = TypeVar("_T")


class Queue(ReadMixin, WorkflowMixin, FlowMixin, AdminMixin):
    """Enqueue jobs and inspect them. ``Queue(pool)`` wraps an existing asyncpg pool;
    ``await Queue.connect()`` makes its own (and starts the embedded server when no DSN is set).
    The reads (get_job, list_jobs, stats, history, lineage) are ReadMixin's (_read.py): it comes
    first so that they stand in for the other mixins' declarations of get_job."""

    def __init__(
        self,
        pool: asyncpg.Pool,
        *,
        schema: str | None = None,
        max_payload_bytes: int = config.DEFAULT_MAX_PAYLOAD_BYTES,
        dsn: str | None = None,
        hooks: Sequence[Subscriber] = (),
        transaction_pooling: bool = False,
        read_pool: asyncpg.Pool | None = None,
        _owns_pool: bool = False,
    ) -> None:
        self.config = config.QueueConfig(
            schema=config.resolve_schema(schema), max_payload_bytes=max_payload_bytes
        )
        self.pool = pool
        # monitoring reads (list_jobs, stats, history, lineage): a standby's pool, else the pool
        self.read_pool = pool if read_pool is None else read_pool
        self.dsn = dsn
        # behind PgBouncer in transaction mode: no LISTEN, no session settings (README)
        self.transaction_pooling = transaction_pooling
        self.queries = Queries(self.config.schema)
        self._depth_guard = _flow.DepthGuard(pool, self.queries)  # max_depth (backpressure)
        self._owns_pool = _owns_pool
        self._waiter: Waiter | None = None
        self.hooks = Hooks(list(hooks))  # "enqueued" events (with tx=: before the commit)
        self._waker = Waker(lambda: self.queries.notify_wake(self.pool))
        self._inserting = 0  # keyless enqueues in flight (outside a caller's transaction)
        # only in a pool of our own, big enough to lend one: a user's pool keeps them all
        self._hot = _connect.HotConnection(pool, enabled=_owns_pool and pool.get_max_size() >= 3)

    @classmethod
    async def connect(
        cls,
        dsn: str | None = None,
        *,
        schema: str | None = None,
        migrate: bool | None = True,
        data_dir: str | Path | None = None,
        pool_min_size: int = 1,
        pool_max_size: int = config.DEFAULT_POOL_MAX_SIZE,
        max_payload_bytes: int = config.DEFAULT_MAX_PAYLOAD_BYTES,
        hooks: Sequence[Subscriber] = (),
        transaction_pooling: bool | None = None,
        read_dsn: str | None = None,
    ) -> Queue:
        """Connect to ``dsn`` (else $AIOQUEUE_DSN, $DATABASE_URL, else the embedded server).
        ``migrate=True`` applies pending migrations; ``False`` requires the schema to be
        installed at this version already; ``None`` does neither (for ``aioqueue migrate``).
        ``transaction_pooling=True`` (default: $AIOQUEUE_TRANSACTION_POOLING): ``dsn`` is a
        pooler in transaction mode such as PgBouncer; see the README on what changes.
        ``read_dsn``: a standby (or any read-only DSN) for the monitoring reads, ``list_jobs``,
        ``stats``, ``history`` and ``lineage``, through a pool whose transactions are all
        read-only; everything else (enqueues, ``get_job``, ``wait``, admin) uses ``dsn``."""
        schema = config.resolve_schema(schema)
        if transaction_pooling is None:
            transaction_pooling = config.transaction_pooling_from_env()
        resolved = await resolve_or_start(dsn, data_dir)
        pool = await _connect.create_pool(
            resolved,
            min_size=pool_min_size,
            max_size=pool_max_size,
            transaction_pooling=transaction_pooling,
        )
        try:
            read_pool = None
            if read_dsn is not None:
                read_pool = await _connect.create_pool(
                    read_dsn,
                    min_size=1,
                    max_size=max(2, pool_max_size // 2),
                    application_name="aioqueue-reader",
                    transaction_pooling=transaction_pooling,
                    read_only=True,
                )
        except BaseException:
            await pool.close()
            raise
        queue = cls(
            pool,
            schema=schema,
            max_payload_bytes=max_payload_bytes,
            dsn=resolved,
            hooks=hooks,
            transaction_pooling=transaction_pooling,
            read_pool=read_pool,
            _owns_pool=True,
        )
        try:
            if migrate:
                await queue.migrate()
            elif migrate is not None:
                await _migrate.check_schema(pool, schema)
            if migrate is not None:
                await queue._depth_guard.preload()  # enqueues never wait for this cache
        except BaseException:
            await queue.close()
            raise
        return queue

    async def migrate(self) -> list[int]:
        """Apply pending migrations (safe to call from several processes at once)."""
        async with self.pool.acquire() as conn:
            return await _migrate.migrate(conn, self.config.schema)

    async def close(self) -> None:
        await self._depth_guard.close()
        await self._waker.close()
        await self._hot.close()
        if self._waiter is not None:
            await self._waiter.close()
            self._waiter = None
        if self._owns_pool:
            await self.pool.close()
            if self.read_pool is not self.pool:
                await self.read_pool.close()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        with anyio.CancelScope(shield=True):
            await self.close()

    # -- producing ---------------------------------------------------------------------------

    async def enqueue(
        self,
        kind: str,
        payload: Any = _MISSING,
        *,
        delay: float | dt.timedelta | None = None,
        run_at: dt.datetime | None = None,
        priority: int = 0,
        unique_key: str | None = None,
        on_conflict: OnConflict = "ignore",
        max_delay: float | dt.timedelta | None = None,
        max_attempts: int | None = None,
        queue_name: str | None = None,
        flags: Sequence[str] | None = None,
        depends_on: Sequence[int] | None = None,
        on_parent_failure: OnParentFailure = "cancel",
        meta: dict[str, Any] | None = None,
        tx: Any = None,
        concurrency_key: str | None = None,
    ) -> EnqueueResult:
        """Enqueue one job. With ``tx=`` it exists only if that transaction commits.
        ``concurrency_key``: the key a task's ``key_concurrency`` limits (e.g. a tenant).
        ``depends_on``: job ids it waits for (state ``waiting``) until all completed; a parent
        that fails or is cancelled cancels it (``on_parent_failure="run"``: runs it anyway).
        ``meta``: small user headers (a dict, at most config.META_MAX_BYTES as JSON), given to
        the handler as ``ctx.job.meta``."""
        workflow = depends_on is not None or meta is not None or on_parent_failure != "cancel"
        if (
            not workflow
            and delay is None
            and run_at is None
            and unique_key is None
            and max_delay is None
            and max_attempts is None
            and queue_name is None
            and flags is None
            and concurrency_key is None
            and on_conflict == "ignore"
            and type(priority) is int
            and priority == 0
        ):
            # the most common call: no JobSpec, and every column at its default
            body = encode_plain(
                kind,
                {} if payload is _MISSING else payload,
                max_payload_bytes=self.config.max_payload_bytes,
            )
            if self._depth_guard.needed():
                await self._depth_guard.check({kind: 1})
            inserted = await self._insert_one(
                lambda db, notify: self.queries.job_insert_now(
                    db, kind=kind, payload=body, notify=notify
                ),
                tx,
            )
            result = EnqueueResult(inserted.ids[0], False)
            if self.hooks:
                self._emit_enqueued([kind], [result])
            return result
        spec = JobSpec(
            kind=kind,
            payload={} if payload is _MISSING else payload,
            delay=delay,
            run_at=run_at,
            priority=priority,
            unique_key=unique_key,
            on_conflict=on_conflict,
            max_delay=max_delay,
            max_attempts=max_attempts,
            queue_name=queue_name,
            flags=loose_list(flags),
            concurrency_key=concurrency_key,
            depends_on=loose_list(depends_on),
            on_parent_failure=on_parent_failure,
            meta=meta,
        )
        if self._depth_guard.needed() and isinstance(kind, str):  # else encoding rejects it
            await self._depth_guard.check({kind: 1})
        specs, route = encode_one(spec, max_payload_bytes=self.config.max_payload_bytes)
        if route != "dedupe":  # nothing to dedupe: one INSERT instead of the add_jobs function
            inserted = await self._insert_one(
                lambda db, notify: self.queries.jobs_insert_many(
                    db, specs=specs, notify_due=notify
                ),
                tx,
            )
            result = EnqueueResult(inserted.ids[0], False)
        else:
            result = EnqueueResult(*(await self._add(specs, tx))[0])
        if self.hooks:
            self._emit_enqueued([spec.kind], [result])
        return result

    async def _insert_one(
        self, insert: Callable[[Executor, bool], Awaitable[Inserted]], tx: Any
    ) -> Inserted:
        """Run a keyless one-job INSERT (``insert(db, notify)``) and wake workers for it."""
        if tx is not None:  # the notification must commit with the caller's transaction
            return await insert(await _connect.unwrap_tx(tx), True)
        # Alone, notify within the insert (one round trip); with other enqueues in flight,
        # wake after the commit so the commits are not serialised (_waker.py).
        alone = self._inserting == 0
        self._inserting += 1
        try:
            inserted = await self._on_hot(lambda db: insert(db, alone))
        finally:
            self._inserting -= 1
        if inserted.wake_after_commit:
            self._waker.request()
        return inserted

    async def enqueue_many(
        self, specs: Iterable[JobSpec | Mapping[str, Any]], *, tx: Any = None
    ) -> list[EnqueueResult]:
        """Enqueue many jobs in ONE round trip; outcomes come back in input order.
        An invalid spec rejects the whole call (naming its index) and nothing is written."""
        items = list(specs)
        encoded, route = encode_specs(items, max_payload_bytes=self.config.max_payload_bytes)
        if encoded == "[]":
            return []
        if self._depth_guard.needed():  # all or nothing: the whole batch must fit
            counts: dict[str, int] = {}
            for i in items:
                k = i["kind"] if isinstance(i, Mapping) else i.kind
                counts[k] = counts.get(k, 0) + 1
            await self._depth_guard.check(counts)
        if route != "dedupe":  # nothing to dedupe: one INSERT instead of the add_jobs function
            if route == "bare":
                ids = await self._write(
                    lambda db: self.queries.jobs_insert_bare(db, specs=encoded), tx
                )
            else:
                inserted = await self._write(
                    lambda db: self.queries.jobs_insert_many(db, specs=encoded), tx
                )
                ids = inserted.ids
            results = [EnqueueResult(job_id, False) for job_id in ids]
        else:
            results = [EnqueueResult(*added) for added in await self._add(encoded, tx)]
        if self.hooks:
            # validated already: the kind is at hand without building the spec again
            kinds = [i["kind"] if isinstance(i, Mapping) else i.kind for i in items]
            self._emit_enqueued(kinds, results)
        return results

    def _emit_enqueued(self, kinds: list[str], results: list[EnqueueResult]) -> None:
        for kind, res in zip(kinds, results, strict=True):
            if not res.deduped:
                self.hooks.emit(Event(type="enqueued", job_id=res.id, kind=kind))

    async def _add(self, specs: str, tx: Any) -> list[Added]:
        try:
            return await self._write(lambda db: self.queries.jobs_add(db, specs=specs), tx)
        except asyncpg.ForeignKeyViolationError as exc:  # depends_on names a missing job
            raise JobNotFound(str(exc).removeprefix("aioqueue: ")) from None

    async def _write(self, call: Callable[[Executor], Awaitable[_T]], tx: Any) -> _T:
        """``call`` in the caller's transaction (``tx=``: its errors are the caller's, a
        read-only session included), else on the queue's own sessions (``_on_hot``)."""
        if tx is not None:
            return await call(await _connect.unwrap_tx(tx))
        return await self._on_hot(call)

    async def _on_hot(self, call: Callable[[Executor], Awaitable[_T]]) -> _T:
        """``call`` on the kept-aside connection (or the pool while another call has it).
        Repeated while the driver refuses to send on a connection the server ended while it
        sat idle (the server may have ended every idle connection at once: a restart, a
        failover), and once after a read-only error, on fresh sessions: a session attached to
        a server that became a standby stays read-only. Both errors mean nothing was written,
        so repeating is safe."""
        last = self.pool.get_max_size()
        read_only = False
        for attempt in range(last + 2):
            try:
                async with self._hot.use() as db:
                    return await call(db)
            except asyncpg.InternalClientError as exc:
                if not _connect.ended_while_idle(exc) or attempt >= last:
                    raise
            except asyncpg.ReadOnlySQLTransactionError as exc:
                await _connect.replace_connections(self.pool, exc)
                if read_only:
                    raise  # still read-only on a fresh session: no writable server yet
                read_only = True
        raise AssertionError("unreachable")

    # -- waiting -----------------------------------------------------------------------------

    async def wait(
        self,
        job_id: int,
        *,
        timeout: float | None = None,
        on_progress: Callable[[Job], object] | None = None,
    ) -> Job:
        """Wait until the job is completed, failed or cancelled (woken by a notification) and
        return it. Raises WaitTimeout after ``timeout`` seconds, JobNotFound if it is gone.
        ``on_progress(job)`` is called each time the job's progress (ctx.progress) changes."""
        waiter = self._get_waiter()
        seen: list[object] = [None]

        async def report() -> None:
            job = await self.get_job(job_id)
            if (job.progress, job.progress_message) != seen[0] and job.progress is not None:
                seen[0] = (job.progress, job.progress_message)
                assert on_progress is not None
                on_progress(job)

        try:
            with anyio.fail_after(timeout):
                state = await waiter.wait_final(job_id, report if on_progress else None)
        except TimeoutError:
            raise WaitTimeout(f"job {job_id} not finished after {timeout} s") from None
        if state is None:
            raise JobNotFound(job_id)
        return await self.get_job(job_id)

    def _get_waiter(self) -> Waiter:
        if self._waiter is None:
            connection = (
                None  # no LISTEN behind a transaction pooler: the waiter polls
                if self.transaction_pooling
                else dedicated(self.dsn, "aioqueue-waiter")
                if self.dsn
                else from_pool(self.pool)
            )
            self._waiter = Waiter(self.pool, self.queries, self.config.channel, connection)
        return self._waiter


async def resolve_or_start(dsn: str | None, data_dir: str | Path | None) -> str:
    """The configured DSN, else the embedded server's (started in a thread if needed)."""
    resolved = config.resolve_dsn(dsn)
    if resolved is not None:
        return resolved
    from ._db import embedded

    folder = Path(data_dir) if data_dir is not None else config.data_dir_from_env()
    return await anyio.to_thread.run_sync(embedded.ensure_server, folder)
