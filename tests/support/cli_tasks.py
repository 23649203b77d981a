"""No-op tasks for the CLI tests' worker subprocesses."""

from __future__ import annotations

from typing import Any

import aioqueue

tasks = aioqueue.Tasks()


@tasks.task("noop")
async def noop(ctx: aioqueue.JobContext, payload: Any) -> None:
    return None
