"""Helpers of the flow-control tests: handlers that record when each job ran."""

from __future__ import annotations

import time
from typing import Any

import anyio

import aioqueue


class Stamps(list[tuple[str | None, float, float]]):
    """The ledger of one test's handlers: (key, start, end); ``wait(n)`` until n entries."""

    def __init__(self) -> None:
        super().__init__()
        self.changed = anyio.Event()

    def add(self, entry: tuple[str | None, float, float]) -> None:
        self.append(entry)
        self.changed.set()

    async def wait(self, n: int, timeout: float = 60) -> None:
        with anyio.fail_after(timeout):
            while len(self) < n:
                self.changed = anyio.Event()
                await self.changed.wait()


def ledger_tasks(kind: str, stamps: Stamps, **limits: Any) -> Any:
    tasks = aioqueue.Tasks()

    @tasks.task(kind, **limits)
    async def handler(ctx: aioqueue.JobContext, payload: Any) -> None:
        start = time.monotonic()
        await anyio.sleep(0.01)  # the job's work: long enough for jobs to overlap
        stamps.add((payload.get("key"), start, time.monotonic()))

    return tasks
