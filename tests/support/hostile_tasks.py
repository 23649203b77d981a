"""Tasks for the hostile-row tests' worker subprocesses. ``touch`` accepts any payload;
``stamp`` appends "job_id start_time" to the file $HOSTILE_STAMPS (O_APPEND: survives a
SIGSTOP and needs no database), so a test can tell when each execution began."""

from __future__ import annotations

import os
import time
from typing import Any

import aioqueue

tasks = aioqueue.Tasks()


@tasks.task("touch")
async def touch(ctx: aioqueue.JobContext, payload: Any) -> None:
    return None


@tasks.task("stamp")
async def stamp(ctx: aioqueue.JobContext, payload: Any) -> None:
    line = f"{ctx.job.id} {time.time():.6f}\n".encode()
    fd = os.open(os.environ["HOSTILE_STAMPS"], os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, line)
    finally:
        os.close(fd)
