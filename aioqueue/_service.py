"""Service lifecycle helpers: run a service in its own task group, periodic loops with jitter."""

from __future__ import annotations

import logging
import random
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Protocol

import anyio
from anyio.abc import TaskStatus

_log = logging.getLogger("aioqueue.maintenance")

# ``extra=`` of a log line about a transient failure that is being retried. A front end (the
# CLI) keeps these off its stderr: ``Outage`` says it once per outage instead.
RETRYING = {"retrying": True}
RECOVERY_GRACE = 2.0  # s: a failure this soon after recovering is a stale connection's


class Outage:
    """The database's availability as an operator wants to read it: one warning when it stops
    answering, one when it answers again (with how long it took); the retries in between are
    each component's own ``RETRYING`` lines."""

    def __init__(self, log: logging.Logger | None = None) -> None:
        self._log = log or logging.getLogger("aioqueue.worker")
        self._since: float | None = None
        self._recovered_at = -RECOVERY_GRACE
        self.outages = 0

    @property
    def ongoing(self) -> bool:
        return self._since is not None

    def failed(self, where: str, exc: BaseException) -> None:
        now = time.monotonic()
        if self._since is not None or now - self._recovered_at < RECOVERY_GRACE:
            return
        self._since = now
        self.outages += 1
        detail = " ".join(str(exc).split())
        self._log.warning(
            "database unavailable (%s in the %s%s); retrying until it answers again",
            type(exc).__name__,
            where,
            f": {detail}" if detail else "",
        )

    def recovered(self) -> None:
        if self._since is None:
            return
        self._recovered_at = time.monotonic()
        took, self._since = self._recovered_at - self._since, None
        self._log.warning("database available again after %.1f s", took)


class Service(Protocol):
    name: str

    async def run(self, *, task_status: TaskStatus[None] = anyio.TASK_STATUS_IGNORED) -> None: ...


@asynccontextmanager
async def running(service: Service) -> AsyncIterator[None]:
    """Start ``service`` (returns once it reports started); cancel it on exit."""
    async with anyio.create_task_group() as tg:
        await tg.start(service.run)
        try:
            yield
        finally:
            tg.cancel_scope.cancel()


def jittered(interval: float, jitter: float = 0.1) -> float:
    return interval * (1 - jitter + 2 * jitter * random.random())


async def run_every(
    interval: float,
    tick: Callable[[], Awaitable[object]],
    *,
    name: str,
    transient: tuple[type[BaseException], ...] = (),
    on_error: Callable[[], Awaitable[object]] | None = None,
) -> None:
    """Call ``tick`` every ``interval`` seconds (jittered) forever; a transient database error
    is logged (then ``on_error`` is awaited) and the next tick tries again."""
    while True:
        await anyio.sleep(jittered(interval))
        try:
            await tick()
        except transient as exc:
            _log.warning("%s: failed (%s); will retry", name, type(exc).__name__, extra=RETRYING)
            if on_error is not None:
                await on_error()
