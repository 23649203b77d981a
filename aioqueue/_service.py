"""Service lifecycle helpers: run a service in its own task group, periodic loops with jitter."""

from __future__ import annotations

import logging
import random
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Protocol

import anyio
from anyio.abc import TaskStatus

_log = logging.getLogger("aioqueue.maintenance")

# ``extra=`` of a log line about a transient failure that is being retried. A front end (the
# CLI) keeps these off its stderr: ``Outage`` says it once per outage instead.
RETRYING = {"retrying": True}


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
    on_error: Callable[[BaseException], Awaitable[object]] | None = None,
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
                await on_error(exc)
