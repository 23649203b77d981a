"""Flow control (issue 20): global limits per kind and key, fairness, rate limits, pause."""

from __future__ import annotations

import time
from typing import Any

import anyio

import aioqueue

from .worker_helpers import running_worker


def max_overlap(intervals: list[tuple[float, float]]) -> int:
    """The most intervals open at one instant (an end at t closes before a start at t)."""
    points = sorted([(s, 1) for s, _ in intervals] + [(e, -1) for _, e in intervals])
    best = now = 0
    for _, d in points:
        now += d
        best = max(best, now)
    return best


def ledger_tasks(kind: str, stamps: list[tuple[str | None, float, float]], **limits: Any) -> Any:
    tasks = aioqueue.Tasks()

    @tasks.task(kind, **limits)
    async def handler(ctx: aioqueue.JobContext, payload: Any) -> None:
        start = time.monotonic()
        await anyio.sleep(0.01)
        stamps.append((payload.get("key"), start, time.monotonic()))

    return tasks


async def test_kind_concurrency_holds_across_workers(q: aioqueue.Queue) -> None:
    stamps: list[tuple[str | None, float, float]] = []
    tasks = ledger_tasks("lim", stamps, concurrency=3)
    await q.enqueue_many([{"kind": "lim", "payload": {}} for _ in range(60)])
    async with running_worker(q, tasks, concurrency=20), running_worker(q, tasks, concurrency=20):
        with anyio.fail_after(60):
            while len(stamps) < 60:
                await anyio.sleep(0.05)
    assert max_overlap([(s, e) for _, s, e in stamps]) <= 3
    flow = await q.limits()
    assert [(k.kind, k.concurrency) for k in flow.kinds] == [("lim", 3)]
