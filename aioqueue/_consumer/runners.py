"""Runners: one long-lived task per busy slot runs job after job.

A task per job cost the worker about a third of its CPU on short jobs (the Task, its first
step and done callback through the event loop, the task registry). A runner instead takes the
next claimed job the moment its job ends, and parks when there is none; a parked runner is
handed the next job directly. There are never more runners than the concurrency.

Each handler still runs in its own copy of the context (``in_own_context``), as it would in its
own task: context variables a handler sets never reach the next job.

Cancelling a job cancels its runner (``RunningJob.stop``); the executor turns that into the
job's outcome, and the runner clears the request before its next job. Only ``cancel_all``
(the worker's hard stop) ends runners that are busy.
"""

from __future__ import annotations

import asyncio
import contextvars
import logging
import types
from collections.abc import Awaitable, Callable, Coroutine, Generator
from typing import Any

import asyncpg

from .running import RunningJob

_log = logging.getLogger("aioqueue.worker")

Next = tuple[asyncpg.Record, RunningJob]


class _InContext:
    """Awaits ``coro`` with every step run inside ``ctx``, the way a Task runs its coroutine."""

    __slots__ = ("_coro", "_ctx")

    def __init__(self, coro: Coroutine[Any, Any, Any], ctx: contextvars.Context) -> None:
        self._coro = coro
        self._ctx = ctx

    def __await__(self) -> Generator[Any, Any, Any]:
        coro, run = self._coro, self._ctx.run
        step: Callable[..., Any] = coro.send
        arg: Any = None
        while True:
            try:
                yielded = run(step, arg)
            except StopIteration as done:
                return done.value
            try:
                arg = yield yielded
                step = coro.send
            except GeneratorExit:
                coro.close()
                raise
            except BaseException as exc:  # thrown in by the Task (cancellation): pass it on
                step, arg = coro.throw, exc


def in_own_context(awaitable: Awaitable[Any]) -> Awaitable[Any]:
    """A handler's coroutine, run in a copy of the current context (other awaitables as-is)."""
    if type(awaitable) is not types.CoroutineType:
        return awaitable
    return _InContext(awaitable, contextvars.copy_context())


class Runners:
    def __init__(
        self,
        *,
        execute: Callable[[asyncpg.Record, RunningJob], Coroutine[Any, Any, None]],
        take_next: Callable[[], Next | None],
        worker_id: str,
    ) -> None:
        self._execute = execute
        self._take_next = take_next
        self._worker_id = worker_id
        self._parked: list[asyncio.Future[Next | None]] = []
        self.tasks: set[asyncio.Task[None]] = set()
        self._closing = False  # no more jobs: parked runners end
        self._hard = False  # cancel_all: busy runners end too

    def start(self, row: asyncpg.Record, job: RunningJob) -> None:
        """Run ``job`` now: on a parked runner, or a new one (the caller counts the slots)."""
        while self._parked:
            parked = self._parked.pop()
            if not parked.done():
                parked.set_result((row, job))
                return
        task = asyncio.get_running_loop().create_task(self._run((row, job)))
        self.tasks.add(task)
        task.add_done_callback(self._ended)

    async def _run(self, first: Next) -> None:
        task = asyncio.current_task()
        assert task is not None
        loop = task.get_loop()
        current: Next | None = first
        while current is not None:
            row, job = current
            job.task = task
            try:
                await self._execute(row, job)
            except asyncio.CancelledError:
                raise  # the executor swallows the cancels meant for one job: this is a stop
            except Exception:
                _log.exception("worker %s: executor failed", self._worker_id)
            finally:
                job.task = None
            if self._hard:
                return  # the handler swallowed the stop's cancellation
            while task.cancelling():
                task.uncancel()  # that job's cancel request was handled
            current = self._take_next()
            if current is None and not self._closing:
                parked: asyncio.Future[Next | None] = loop.create_future()
                self._parked.append(parked)
                current = await parked

    def _ended(self, task: asyncio.Task[None]) -> None:
        self.tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            _log.error("worker %s: runner failed", self._worker_id, exc_info=task.exception())

    def close(self) -> None:
        """No job comes any more: parked runners end, busy ones after their job."""
        self._closing = True
        parked, self._parked = self._parked, []
        for future in parked:
            if not future.done():
                future.set_result(None)

    async def drain(self, timeout: float) -> None:
        """Close, and wait up to ``timeout`` for the running jobs to end."""
        self.close()
        busy = [t for t in self.tasks if not t.done()]
        if busy:
            await asyncio.wait(busy, timeout=timeout)

    async def cancel_all(self, grace: float) -> set[asyncio.Task[None]]:
        """Cancel every runner (their jobs are given back); returns those still running after
        ``grace`` seconds: their handlers ignore cancellation."""
        self.close()
        self._hard = True
        busy = [t for t in self.tasks if not t.done()]
        for task in busy:
            task.cancel()
        if not busy:
            return set()
        _, stuck = await asyncio.wait(busy, timeout=grace)
        return stuck
