"""Wake workers after a producer's commit, coalesced: one NOTIFY in flight at most.

A due job enqueued outside the caller's transaction is committed without a notification, and
this sends one right after. Notifying inside the inserting transaction would hold PostgreSQL's
database-wide notify lock through the commit's WAL flush, so concurrent enqueues would commit
one at a time. Every request is followed by a NOTIFY that starts after it: a request made while
one is in flight causes exactly one more.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

_log = logging.getLogger("aioqueue.worker")


class Waker:
    def __init__(self, send: Callable[[], Awaitable[None]]) -> None:
        self._send = send
        self._task: asyncio.Task[None] | None = None
        self._again = False

    def request(self) -> None:
        if self._task is None or self._task.done():
            self._task = asyncio.get_running_loop().create_task(self._run())
        else:
            self._again = True

    async def _run(self) -> None:
        while True:
            self._again = False
            try:
                await self._send()
            except Exception as exc:  # workers still find the job by polling
                _log.debug("wake-up notification failed: %s", type(exc).__name__)
            if not self._again:
                return

    async def close(self) -> None:
        """Let a wake-up in flight finish (it is one short statement)."""
        if self._task is not None and not self._task.done():
            await asyncio.shield(self._task)
