"""Waiter: lets ``Queue.wait`` sleep until a job reaches a final state, woken by NOTIFY.

One LISTEN connection per Queue, opened on the first wait and shared by all waiters. A waiter
marks its job (``jobs.waited``, job_watch.sql) so that the statement finishing it sends an 'f'
notification; jobs nobody waits for finish without one. Each 'f' wakes every waiter of the
Queue to look again, and a lost notification only delays a waiter until its next re-check
(every ``recheck`` seconds). Without a LISTEN connection (behind a transaction pooler) it
only polls, every ``POLL`` seconds.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable

import anyio

from . import _wake
from ._db.queries import Executor, Queries
from ._notifier import ConnectionFactory, Notifier

FINAL = frozenset({"completed", "failed", "cancelled"})
POLL = 0.25


class Waiter:
    def __init__(
        self,
        db: Executor,
        queries: Queries,
        channel: str,
        connection: ConnectionFactory | None,
        *,
        recheck: float = 5.0,
    ) -> None:
        self._db = db
        self._queries = queries
        self._recheck = recheck if connection is not None else POLL
        self._changed = anyio.Event()
        self._notifier = (
            None
            if connection is None
            else Notifier(
                connection, queries, channel, on_notify=self._on_notify, on_reconnect=self._poke
            )
        )
        self._task: asyncio.Task[None] | None = None
        self._ready = anyio.Event()

    def _on_notify(self, payload: str) -> None:
        if _wake.parse(payload).kind in ("finished", "progress"):
            self._poke()

    def _poke(self) -> None:
        self._changed.set()
        self._changed = anyio.Event()

    async def _ensure_started(self) -> None:
        if self._notifier is None:
            return
        if self._task is None:
            self._task = asyncio.ensure_future(self._run())
        await self._ready.wait()

    async def _run(self) -> None:
        assert self._notifier is not None
        async with anyio.create_task_group() as tg:
            await tg.start(self._notifier.run)
            self._ready.set()

    async def wait_until(self, check: Callable[[], Awaitable[bool]]) -> None:
        """Block until ``check()`` is true, looking again at each 'f' (e.g. a group finished)."""
        await self._ensure_started()
        while True:
            changed = self._changed
            if await check():
                return
            with anyio.move_on_after(self._recheck):
                await changed.wait()

    async def wait_final(
        self, job_id: int, on_wake: Callable[[], Awaitable[None]] | None = None
    ) -> str | None:
        """Block until ``job_id`` is final; returns its state (None if it does not exist).
        ``on_wake`` is awaited before each look (Queue.wait's on_progress)."""
        await self._ensure_started()
        while True:
            changed = self._changed  # take the event before looking, so no wake-up is missed
            if on_wake is not None:
                await on_wake()
            # Marked while not final: whatever finishes it from now on sends 'f'. The row lock
            # orders this against a finishing statement, so one of the two sees the other.
            if await self._queries.job_watch(self._db, id=job_id):
                with anyio.move_on_after(self._recheck):
                    await changed.wait()
                continue
            state = (await self._queries.job_get_many(self._db, ids=[job_id])).get(job_id)
            if state is None:
                return None
            if state in FINAL:
                return state
            # active again (retried since the mark was refused): mark it on the next pass

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
