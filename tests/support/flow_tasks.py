"""Tasks for the flow-control tests' CLI worker processes: each handler stamps its start and
end (wall clock, shared by the processes of one host) into its result: the ledger."""

from __future__ import annotations

import random
import time
from typing import Any

import anyio

import aioqueue

tasks = aioqueue.Tasks()


@tasks.task("limited", concurrency=5, key_concurrency=2)
async def limited(ctx: aioqueue.JobContext, payload: Any) -> dict[str, float]:
    start = time.time()
    await anyio.sleep(random.uniform(0.005, 0.03))
    return {"start": start, "end": time.time()}
