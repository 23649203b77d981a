"""Notifier: one dedicated LISTEN connection per worker, kept alive.

It reconnects with capped, jittered backoff after the backend is terminated, the server restarts
or a liveness probe fails, and after every reconnect it asks for a full fetch, because
notifications sent while it was away are gone.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

import anyio
import asyncpg
from anyio.abc import TaskStatus

from ._db.connect import Outage, discard_pooled, open_connection
from ._db.queries import Queries
from ._service import RETRYING, jittered
from .config import mask_dsn

_log = logging.getLogger("aioqueue.worker")

Listener = asyncpg.Connection | asyncpg.pool.PoolConnectionProxy
ConnectionFactory = Callable[[], contextlib.AbstractAsyncContextManager[Listener]]


class Notifier:
    name = "notifier"

    def __init__(
        self,
        connection: ConnectionFactory,
        queries: Queries,
        channel: str,
        *,
        on_notify: Callable[[str], None],
        on_reconnect: Callable[[], None],
        backoff_start: float = 0.1,
        backoff_max: float = 2.0,
        ping_interval: float = 10.0,
        outage: Outage | None = None,
    ) -> None:
        self._connection = connection
        self._queries = queries
        self._channel = channel
        self._on_notify = on_notify
        self._on_reconnect = on_reconnect
        self._backoff_start = backoff_start
        self._backoff_max = backoff_max
        self._ping_interval = ping_interval
        self._outage = outage or Outage()
        self.backend_pid: int | None = None
        # the database's clock minus this host's, in seconds: hints carry database time
        self.clock_offset = 0.0
        self.connected = anyio.Event()
        self.reconnects = 0
        self._changed = anyio.Event()

    def _callback(self, conn: Any, pid: int, channel: str, payload: object) -> None:
        self._on_notify(str(payload))

    async def run(self, *, task_status: TaskStatus[None] = anyio.TASK_STATUS_IGNORED) -> None:
        backoff = self._backoff_start
        started = False
        while True:
            try:
                async with self._connection() as conn:
                    lost = anyio.Event()
                    conn.add_termination_listener(_setter(lost))
                    await conn.add_listener(self._channel, self._callback)
                    await self._sync_clock(conn)
                    self.backend_pid = conn.get_server_pid()
                    self.connected.set()
                    self._outage.recovered("notifier")
                    if started:
                        self.reconnects += 1
                        _log.info("notifier: LISTEN re-established (pid %s)", self.backend_pid)
                        self._on_reconnect()  # notifications sent meanwhile are lost
                    else:
                        started = True
                        task_status.started()
                    self._signal()
                    backoff = self._backoff_start
                    await self._watch(conn, lost)
            except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError, TimeoutError) as exc:
                self._outage.failed("notifier", exc)
                _log.warning(
                    "notifier: connection lost (%s); reconnecting",
                    type(exc).__name__,
                    extra=RETRYING,
                )
            finally:
                if self.connected.is_set():
                    self.connected = anyio.Event()
                self.backend_pid = None
            if not started:
                started = True
                task_status.started()  # start anyway; polling covers us until LISTEN is back
            await anyio.sleep(jittered(backoff, 0.2))
            backoff = min(backoff * 2, self._backoff_max)

    def _signal(self) -> None:
        event, self._changed = self._changed, anyio.Event()
        event.set()

    async def wait_reconnected(self, count: int, *, timeout: float) -> None:
        """Until LISTEN has been re-established ``count`` times (for tests and health checks)."""
        with anyio.fail_after(timeout):
            while self.reconnects < count or not self.connected.is_set():
                await self._changed.wait()

    async def _watch(self, conn: Listener, lost: anyio.Event) -> None:
        """Return when the connection is gone (termination event or failed probe)."""
        while not lost.is_set() and not conn.is_closed():
            with anyio.move_on_after(self._ping_interval):
                await lost.wait()
                return
            await self._sync_clock(conn)

    async def _sync_clock(self, conn: Listener) -> None:
        """Read the database's clock (also the liveness probe of the connection)."""
        with anyio.fail_after(5):
            epoch = await self._queries.db_clock(conn)
            # a lower bound (the database read its clock before the reply arrived): a timer set
            # with it never fires before the database's clock reaches the hint
            self.clock_offset = float(epoch) - time.time()


def _setter(event: anyio.Event) -> Callable[[object], None]:
    return lambda _conn: event.set()


def dedicated(dsn: str, application_name: str) -> ConnectionFactory:
    """A factory of fresh connections, closed (quickly, shielded) on exit."""

    @contextlib.asynccontextmanager
    async def factory() -> AsyncIterator[asyncpg.Connection]:
        conn = await open_connection(
            dsn, where=mask_dsn(dsn), server_settings={"application_name": application_name}
        )
        try:
            yield conn
        finally:
            with anyio.CancelScope(shield=True), anyio.move_on_after(2):
                await conn.close()
            if not conn.is_closed():
                conn.terminate()

    return factory


def from_pool(pool: asyncpg.Pool) -> ConnectionFactory:
    """A factory that holds one pool connection (when the Queue wraps a pool without a DSN).

    The connection goes back terminated: a LISTEN session with its listener attached must not
    reach the application's pool (asyncpg warns, and its reset could wait on a dead socket);
    the pool opens a fresh connection when it next needs one."""

    @contextlib.asynccontextmanager
    async def factory() -> AsyncIterator[Listener]:
        conn = await pool.acquire()
        try:
            yield conn
        finally:
            with anyio.CancelScope(shield=True):
                await discard_pooled(pool, conn)

    return factory
