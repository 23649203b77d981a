"""Pools, dedicated connections, and unwrapping the caller's transaction (``tx=``)."""

from __future__ import annotations

import contextlib
import functools
import logging
import time
from collections.abc import AsyncIterator, Callable, Coroutine, Iterator
from typing import Any, Concatenate, ParamSpec, Protocol, TypeVar

import anyio
import asyncpg

from ..config import mask_dsn
from ..errors import ConfigurationError, DatabaseUnavailable
from .queries import Executor, Queries

APPLICATION_NAME = "aioqueue"

# Every connection of aioqueue's own pool runs without JIT: most packaged and managed servers
# have it on, and a plan costed over jit_above_cost (a generic plan guessing at a big table)
# would be compiled on every run. Set after connecting, never as a startup parameter, which
# PgBouncer rejects.
POOL_SESSION = {"jit": "off"}


RECOVERY_GRACE = 2.0  # s: a failure this soon after recovering is a stale connection's


class Outage:
    """The database's availability as an operator wants to read it: one warning when it stops
    answering, one when it answers again (with how long it took); the retries in between are
    each component's own ``RETRYING`` lines. It is over once every component that failed
    (claims, outcomes, heartbeat, LISTEN) has succeeded again: claims failing alone (e.g. too
    many connections) stay reported while the heartbeat works."""

    def __init__(self, log: logging.Logger | None = None) -> None:
        self._log = log or logging.getLogger("aioqueue.worker")
        self._since: float | None = None
        self._failing: set[str] = set()
        self._recovered_at = -RECOVERY_GRACE

    def failed(self, where: str, exc: BaseException) -> None:
        now = time.monotonic()
        if self._since is not None:
            self._failing.add(where)
            return
        if now - self._recovered_at < RECOVERY_GRACE:
            return
        self._since = now
        self._failing = {where}
        detail = mask_dsn(" ".join(str(exc).split()))
        self._log.warning(
            "database unavailable (%s in the %s%s); retrying until it answers again",
            type(exc).__name__,
            where,
            f": {detail}" if detail else "",
        )

    def recovered(self, where: str) -> None:
        if self._since is None:
            return
        self._failing.discard(where)
        if self._failing:
            return
        self._recovered_at = time.monotonic()
        took, self._since = self._recovered_at - self._since, None
        self._log.warning("database available again after %.1f s", took)


async def create_pool(
    dsn: str,
    *,
    min_size: int = 1,
    max_size: int = 10,
    application_name: str = APPLICATION_NAME,
    transaction_pooling: bool = False,
    read_only: bool = False,
) -> asyncpg.Pool:
    """An asyncpg pool; connection errors name the server but never the password.

    ``transaction_pooling``: ``dsn`` is a pooler in transaction mode (PgBouncer): no named
    prepared statements (asyncpg's statement cache) and no session settings, which would land
    on whichever server connection the pooler lent, and stay there for its other clients.
    ``read_only``: every transaction of the pool is read-only (the reader of ``read_dsn=``);
    behind a transaction pooler, which keeps no session setting, only the server itself (a
    standby) refuses writes."""
    extra: dict[str, Any] = {}
    if transaction_pooling:
        extra["statement_cache_size"] = 0
    else:
        extra["init"] = _reader_session if read_only else _pool_session
    try:
        pool = await asyncpg.create_pool(
            dsn,
            min_size=min_size,
            max_size=max_size,
            server_settings={"application_name": application_name},
            reset=_no_reset,
            connect=functools.partial(open_connection, where=mask_dsn(dsn)),
            **extra,
        )
    except DatabaseUnavailable:
        raise  # already names the server (never the password): not wrapped again
    except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError, ValueError) as exc:
        raise ConfigurationError(
            f"cannot connect to {mask_dsn(dsn)}: {type(exc).__name__}: {mask_dsn(str(exc))}"
        ) from None
    assert pool is not None
    return pool


# Failures to open a connection, before anything is sent: the call can simply be retried.
# TargetServerAttributeNotMatched: a multi-host DSN with target_session_attrs=read-write found
# only standbys (mid-failover, before one is promoted).
UNREACHABLE = (
    FileNotFoundError,
    ConnectionRefusedError,
    asyncpg.CannotConnectNowError,
    asyncpg.TargetServerAttributeNotMatched,
)


async def open_connection(*args: Any, where: str, **kwargs: Any) -> asyncpg.Connection:
    """The pool's way to open a connection: an unreachable server raises DatabaseUnavailable,
    naming the server (never the password) instead of the socket's bare OSError."""
    try:
        return await asyncpg.connect(*args, **kwargs)
    except UNREACHABLE as exc:
        raise DatabaseUnavailable(
            f"cannot reach PostgreSQL at {where}: {type(exc).__name__}: {mask_dsn(str(exc))}"
        ) from exc


async def apply_session(conn: Any, settings: dict[str, str], *, local: bool = False) -> None:
    """Session settings, each through its ``session_<name>.sql`` (set_config); ``local``: for
    the current transaction only."""
    for name, value in settings.items():
        await _SETTERS[name](conn, value=value, local=local)


_SETTERS = {
    "jit": Queries.session_jit,
    "plan_cache_mode": Queries.session_plan_cache_mode,
    "synchronous_commit": Queries.session_synchronous_commit,
}


async def _pool_session(conn: Any) -> None:
    await apply_session(conn, POOL_SESSION)


async def _reader_session(conn: Any) -> None:
    """The reader pool's (read_dsn=): every transaction read-only, so nothing can write through
    it even when read_dsn names the primary (a standby refuses writes anyway)."""
    await apply_session(conn, POOL_SESSION)
    await Queries.reader_read_only(conn)


async def _no_reset(conn: asyncpg.Connection) -> None:
    """aioqueue's own pool never leaves session state behind (no LISTEN, session advisory
    locks or SET on pooled connections), so skip asyncpg's reset: one round trip per release,
    which doubled the cost of a single enqueue."""


def is_open(conn: Any) -> bool:
    """False once the connection is lost (asyncpg then also detaches a pool's proxy of it)."""
    try:
        return not conn.is_closed()
    except asyncpg.InterfaceError:
        return False


def terminate_pooled(conn: Any) -> None:
    """Close a pool's connection at once; asyncpg then hands its slot back to the pool (the
    pool opens a fresh connection when it needs one). Dropping a failed connection without this
    leaks the slot: a protocol abort can close it without asyncpg's own cleanup running."""
    with contextlib.suppress(asyncpg.InterfaceError):  # already given back (proxy detached)
        conn.terminate()


async def discard_pooled(pool: asyncpg.Pool, conn: Any) -> None:
    """Give a connection back to ``pool`` terminated, through the pool's own API: for one
    that failed, or whose session state (LISTEN, SET) must not reach an application's pool."""
    terminate_pooled(conn)
    with contextlib.suppress(asyncpg.InterfaceError):
        await pool.release(conn)  # a no-op once terminated, as asyncpg expects


class HotConnection:
    """One pooled connection kept out of the pool for a Queue's single statements: it skips
    asyncpg's acquire/release (about 100 µs of CPU per call, more than the statement itself).
    Used by one call at a time; concurrent calls fall back to the pool. After any error the
    connection goes back to the pool, which resets or discards it."""

    def __init__(self, pool: asyncpg.Pool, *, enabled: bool = True) -> None:
        self._pool = pool
        self._conn: Any = None
        self._busy = not enabled  # disabled: every call uses the pool

    def use(self) -> _HotUse:
        """``async with hot.use() as db``: the kept-aside connection, or the pool while another
        call has it. A class, not a generator context manager: this is on every single enqueue."""
        return _HotUse(self)

    async def close(self) -> None:
        self._busy = True
        conn, self._conn = self._conn, None
        if conn is not None:
            await self._pool.release(conn)


class _HotUse:
    __slots__ = ("_conn", "_hot")

    def __init__(self, hot: HotConnection) -> None:
        self._hot = hot
        self._conn: Any = None

    async def __aenter__(self) -> Executor:
        hot = self._hot
        if hot._busy:
            return hot._pool
        hot._busy = True
        try:
            if hot._conn is not None and not is_open(hot._conn):
                # lost while idle (server restart, network): nothing was sent on it yet
                with contextlib.suppress(Exception):
                    await hot._pool.release(hot._conn)
                hot._conn = None
            if hot._conn is None:
                hot._conn = await hot._pool.acquire()
        except BaseException:
            hot._busy = False
            raise
        self._conn = hot._conn
        return self._conn  # type: ignore[no-any-return]

    async def __aexit__(self, exc_type: Any, exc: Any, tb: Any) -> None:
        conn, hot = self._conn, self._hot
        if conn is None:
            return  # the pool was used
        try:
            if exc_type is not None:
                hot._conn = None  # the pool resets or discards it
                if ended_while_idle(exc) or isinstance(exc, asyncpg.ReadOnlySQLTransactionError):
                    # not closed yet to the driver: the pool would lend it again (a read-only
                    # session stays read-only: attached to a server demoted to a standby)
                    conn.terminate()
                await hot._pool.release(conn)
                await replace_connections(hot._pool, exc)
        finally:
            hot._busy = False


def ended_while_idle(exc: BaseException) -> bool:
    """The driver refused to send on a connection the server ended while it sat idle
    (idle_session_timeout, pg_terminate_backend): it had read the server's notice but not yet
    the close. Raised before anything is written, so the call can be repeated as it is."""
    return isinstance(exc, asyncpg.InternalClientError) and "cannot switch to state" in str(exc)


async def replace_connections(db: Executor, exc: BaseException) -> None:
    """After a read-only error, make a pool open fresh connections (each as it is released):
    a session attached to a server that turned read-only (failover) stays read-only even once
    the database is writable again. Lost connections need nothing: the pool drops them, and
    expiring them would make asyncpg close each in a task of its own whose error nobody awaits."""
    if isinstance(db, asyncpg.Pool) and isinstance(exc, asyncpg.ReadOnlySQLTransactionError):
        await db.expire_connections()


class _HasPool(Protocol):
    pool: asyncpg.Pool


_S = TypeVar("_S", bound=_HasPool)
_P = ParamSpec("_P")
_R = TypeVar("_R")


def replaces_read_only(
    method: Callable[Concatenate[_S, _P], Coroutine[Any, Any, _R]],
) -> Callable[Concatenate[_S, _P], Coroutine[Any, Any, _R]]:
    """For a ``Queue`` method that writes through its pool: after a read-only error the pool's
    sessions are replaced (see ``replace_connections``) and the call is made once more (the
    refused statement wrote nothing). Still read-only: the error is raised, and the sessions
    opened meanwhile are replaced again, so the first call after the failover succeeds.
    A call in the caller's transaction (``tx=``) is made once: that transaction is theirs.
    Arguments that are one-shot iterators (a generator of specs or ids) are read into lists
    first, so the second call gets them all again."""

    @functools.wraps(method)
    async def call(self: _S, /, *args: _P.args, **kwargs: _P.kwargs) -> _R:
        if kwargs.get("tx") is not None:
            return await method(self, *args, **kwargs)
        args = tuple(_replayable(a) for a in args)  # type: ignore[assignment]
        kwargs = {k: _replayable(v) for k, v in kwargs.items()}  # type: ignore[assignment]
        for attempt in (1, 2):
            try:
                return await method(self, *args, **kwargs)
            except asyncpg.ReadOnlySQLTransactionError as exc:
                await replace_connections(self.pool, exc)
                if attempt == 2:
                    raise
        raise AssertionError("unreachable")

    return call


def _replayable(value: Any) -> Any:
    return list(value) if isinstance(value, Iterator) else value


async def connect(dsn: str, *, application_name: str = APPLICATION_NAME) -> asyncpg.Connection:
    """One dedicated connection (LISTEN, migrations, CLI). An unreachable server raises
    DatabaseUnavailable (retryable), anything else about the DSN ConfigurationError."""
    try:
        return await open_connection(
            dsn, where=mask_dsn(dsn), server_settings={"application_name": application_name}
        )
    except DatabaseUnavailable:
        raise  # already names the server (never the password): not wrapped again
    except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError, ValueError) as exc:
        raise ConfigurationError(
            f"cannot connect to {mask_dsn(dsn)}: {type(exc).__name__}: {mask_dsn(str(exc))}"
        ) from None


async def unwrap_tx(tx: Any) -> asyncpg.Connection:
    """The asyncpg connection behind ``tx``, which must already be inside a transaction.

    Accepts an asyncpg ``Connection`` (or pool proxy), or an SQLAlchemy ``AsyncConnection`` /
    ``AsyncSession`` on the asyncpg driver. aioqueue never begins or commits the transaction;
    SQLAlchemy begins it lazily, so an idle one is started through SQLAlchemy itself.
    """
    if isinstance(tx, asyncpg.Connection | asyncpg.pool.PoolConnectionProxy):
        if not tx.is_in_transaction():
            raise ConfigurationError(
                "tx= connection is not inside a transaction; use `async with conn.transaction():`"
            )
        return tx  # type: ignore[return-value]
    module = type(tx).__module__
    if module.startswith("sqlalchemy"):
        return await _unwrap_sqlalchemy(tx)
    raise ConfigurationError(
        f"tx= must be an asyncpg Connection or an SQLAlchemy AsyncConnection/AsyncSession, "
        f"got {type(tx).__name__}"
    )


async def _unwrap_sqlalchemy(tx: Any) -> asyncpg.Connection:
    from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession

    if isinstance(tx, AsyncSession):
        # session.connection() would autobegin a transaction on an idle session: aioqueue
        # would then have opened a transaction nobody commits (the job silently vanishes)
        if not tx.in_transaction():
            raise ConfigurationError(
                "tx= SQLAlchemy session is not inside a transaction; use "
                "`async with session.begin():`"
            )
        conn = await tx.connection()
    elif isinstance(tx, AsyncConnection):
        conn = tx
    else:
        raise ConfigurationError(
            f"tx= must be an SQLAlchemy AsyncConnection or AsyncSession, got {type(tx).__name__}"
        )
    if not conn.in_transaction():
        raise ConfigurationError("tx= SQLAlchemy connection is not inside a transaction")
    raw = await conn.get_raw_connection()
    driver = raw.driver_connection
    if not isinstance(driver, asyncpg.Connection):
        raise ConfigurationError(
            f"tx= SQLAlchemy connection must use the asyncpg driver, got {type(driver).__name__}"
        )
    if not driver.is_in_transaction():
        # SQLAlchemy's asyncpg adapter sends BEGIN with its first statement.
        await conn.exec_driver_sql("SELECT 1")
        if not driver.is_in_transaction():
            raise ConfigurationError("tx= SQLAlchemy connection is in autocommit mode")
    return driver


class Dedicated:
    """One connection kept for a single user (the producer's claims), reopened after a failure.

    ``settings`` are session settings, e.g. ``synchronous_commit=off`` for claims: a claim lost
    in a server crash only leaves its jobs pending (they run later), so claims need not wait for
    the WAL flush; outcomes are written elsewhere, durably. ``per_transaction``: behind a
    transaction pooler a session setting may land on another client's server connection, so
    ``transaction()`` wraps each use in a transaction that sets them LOCAL (``jit`` is the one that
    matters: a DBA's ``plan_cache_mode=force_generic_plan`` gets the claim JIT-compiled).
    """

    def __init__(
        self,
        dsn: str | None,
        pool: asyncpg.Pool,
        *,
        application_name: str,
        settings: dict[str, str],
        outage: Outage | None = None,
        per_transaction: bool = False,
    ) -> None:
        self.outage = outage or Outage()  # the claims report their failures and successes
        self._per_transaction = per_transaction
        self._dsn = dsn
        self._pool = pool
        self._application_name = application_name
        self._settings = settings
        self._conn: asyncpg.Connection | asyncpg.pool.PoolConnectionProxy | None = None

    async def get(self) -> asyncpg.Connection | asyncpg.pool.PoolConnectionProxy:
        conn = self._conn
        if conn is not None and is_open(conn):
            return conn
        self._conn = None
        if conn is not None and self._dsn is None:
            await discard_pooled(self._pool, conn)  # lost: its slot goes back to the pool
        if self._dsn is not None:
            conn = await open_connection(
                self._dsn,
                where=mask_dsn(self._dsn),
                server_settings={"application_name": self._application_name},
            )
        else:
            conn = await self._pool.acquire()
        try:
            if not self._per_transaction:
                await apply_session(conn, self._settings)  # set_config: PgBouncer rejects startup
        except BaseException:
            if self._dsn is not None:
                conn.terminate()
            else:
                with anyio.CancelScope(shield=True):
                    await discard_pooled(self._pool, conn)
            raise
        self._conn = conn
        return conn

    def transaction(self, conn: Any) -> contextlib.AbstractAsyncContextManager[None]:
        """Around each use of ``conn``: nothing when the settings hold for the session; else a
        transaction whose first statement sets them for itself (three more round trips)."""
        if not self._per_transaction or not self._settings:
            return contextlib.nullcontext()
        return self._local(conn)

    @contextlib.asynccontextmanager
    async def _local(self, conn: Any) -> AsyncIterator[None]:
        async with conn.transaction():
            await apply_session(conn, self._settings, local=True)
            yield

    def invalidate(self) -> None:
        """Forget a connection that failed; the next ``get`` opens a new one. A pool's
        connection is terminated, which gives its slot back to the pool at once."""
        conn, self._conn = self._conn, None
        if conn is None:
            return
        if self._dsn is None:
            terminate_pooled(conn)
        elif not conn.is_closed():
            conn.terminate()

    async def close(self) -> None:
        conn, self._conn = self._conn, None
        if conn is None:
            return
        if self._dsn is None:
            # the session carries the claim settings (synchronous_commit=off): it never goes
            # back to an application's pool, whatever that pool's reset does
            await discard_pooled(self._pool, conn)
        else:
            await conn.close(timeout=2)
