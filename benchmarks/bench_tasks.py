"""No-op tasks for benchmark workers (also run by subprocess workers via the CLI)."""

from __future__ import annotations

from typing import Any

import aioqueue

tasks = aioqueue.Tasks()


@tasks.task("bench")
async def bench(ctx: aioqueue.JobContext, payload: Any) -> None:
    return None
