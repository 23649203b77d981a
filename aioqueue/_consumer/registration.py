"""Registration: this worker's row in the workers table (id, host, pid, the kinds it handles),
so ``aioqueue status`` can name the due kinds that no live worker handles (RELIABILITY E1).

The row is inserted when the worker starts, refreshed by the heartbeat (``touch``: one small
UPDATE per tick, never per job) and deleted when the worker stops; the row of a worker that
crashed goes stale and is pruned. Best effort, never fatal for the jobs: a transient database
error at start is logged and the next heartbeat registers again; a role without rights on the
table (grants made before it existed) is told once how to fix that and the worker runs
unregistered.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import logging
import os
import socket

import anyio
import asyncpg

from .._db.errors import TRANSIENT
from .._db.queries import Executor, Queries

_log = logging.getLogger("aioqueue.worker")
STOP_TIMEOUT = 2.0  # at most this long to delete the row when stopping


class Registration:
    def __init__(self, db: Executor, queries: Queries, *, worker_id: str, kinds: list[str]) -> None:
        self._db = db
        self._queries = queries
        self.worker_id = worker_id
        self._kinds = kinds
        self._hostname = socket.gethostname()
        self._pid = os.getpid()
        self._started_at: dt.datetime | None = None  # set by the first registration (DB time)
        self._denied = False

    async def register(self) -> None:
        """At start. A transient error is logged, not raised: the next heartbeat retries."""
        try:
            await self._register()
        except TRANSIENT as exc:
            _log.warning(
                "worker %s: registration failed (%s); will retry",
                self.worker_id,
                type(exc).__name__,
            )

    async def touch(self) -> None:
        """On every heartbeat tick: refresh last_seen_at, or register again if the row is gone
        (or the registration at start failed). Transient errors propagate to the heartbeat."""
        if self._denied:
            return
        if self._started_at is not None:
            try:
                if await self._queries.worker_touch(self._db, worker_id=self.worker_id):
                    return
            except asyncpg.InsufficientPrivilegeError as exc:
                self._deny(exc)
                return
        await self._register()

    async def deregister(self) -> None:
        """When stopping (also on a hard stop): delete the row, shielded and bounded; if that
        fails, the row goes stale and is pruned later."""
        if self._denied:
            return
        with anyio.CancelScope(shield=True), anyio.move_on_after(STOP_TIMEOUT):
            with contextlib.suppress(*TRANSIENT):
                await self._queries.worker_deregister(self._db, worker_id=self.worker_id)

    async def _register(self) -> None:
        try:
            self._started_at = await self._queries.worker_register(
                self._db,
                worker_id=self.worker_id,
                hostname=self._hostname,
                pid=self._pid,
                kinds=self._kinds,
                started_at=self._started_at,
            )
        except asyncpg.InsufficientPrivilegeError as exc:
            self._deny(exc)

    def _deny(self, exc: asyncpg.InsufficientPrivilegeError) -> None:
        self._denied = True
        _log.error(
            "worker %s: cannot register in the workers table (%s); `aioqueue status` will not "
            "count this worker. Grant its role SELECT, INSERT, UPDATE, DELETE on the workers "
            "table and a row policy, as examples/sql_least_privilege.sql does",
            self.worker_id,
            exc,
        )
