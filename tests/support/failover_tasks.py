"""The failover test's task, for its CLI worker subprocess."""

from __future__ import annotations

import aioqueue

tasks = aioqueue.Tasks()


@tasks.task("work")
async def work(ctx: aioqueue.JobContext, payload: int) -> int:
    return payload
