"""Tasks for the T3 soak tier (tests/chaos/test_soak.py), run by worker subprocesses."""

from __future__ import annotations

from typing import Any

import anyio

import aioqueue

tasks = aioqueue.Tasks()


@tasks.task("noop")
async def noop(ctx: aioqueue.JobContext, payload: Any) -> None:
    return None


@tasks.task("hold")
async def hold(ctx: aioqueue.JobContext, payload: dict[str, Any]) -> None:
    await anyio.sleep(float(payload["seconds"]))
