"""Tasks run by worker subprocesses in the chaos tests. Every execution is recorded in a ledger
table through the task's own autocommit connection, so the ledger survives kills."""

from __future__ import annotations

import os
import time
from typing import Any

import anyio
import asyncpg

import aioqueue

tasks = aioqueue.Tasks()
_pool: asyncpg.Pool | None = None
_lock = anyio.Lock()


async def _ledger() -> asyncpg.Pool:
    global _pool
    async with _lock:
        if _pool is None:
            _pool = await asyncpg.create_pool(os.environ["CHAOS_DSN"], min_size=1, max_size=5)
    assert _pool is not None
    return _pool


async def record(job: aioqueue.JobInfo, outcome: str) -> None:
    pool = await _ledger()
    await pool.execute(
        f'INSERT INTO "{os.environ["CHAOS_SCHEMA"]}".chaos_ledger '
        "(job_id, attempt, worker_pid, outcome) VALUES ($1, $2, $3, $4)",
        job.id,
        job.attempts,
        os.getpid(),
        outcome,
    )


@tasks.task("sleep")
async def sleep(ctx: aioqueue.JobContext, payload: dict[str, Any]) -> str:
    await record(ctx.job, "started")
    await anyio.sleep(float(payload.get("seconds", 0)))
    await record(ctx.job, "finished")
    return f"done by {os.getpid()}"


@tasks.task("die", max_attempts=3)
async def die(ctx: aioqueue.JobContext, payload: Any) -> None:
    """A poison pill that kills its own worker process."""
    await record(ctx.job, "started")
    os._exit(137)


@tasks.task("block")
async def block(ctx: aioqueue.JobContext, payload: dict[str, Any]) -> str:
    """Blocks the event loop (sync sleep), then returns at once: no await after the block, so
    the outcome is handed to the completer before any other task of the worker runs."""
    await record(ctx.job, "started")
    if "until_file" in payload:  # blocked until the test says so (at most two minutes)
        deadline = time.monotonic() + 120
        while not os.path.exists(payload["until_file"]) and time.monotonic() < deadline:  # noqa: ASYNC240
            time.sleep(0.05)  # noqa: ASYNC251 - the point of the task
    time.sleep(float(payload.get("seconds", 0)))  # noqa: ASYNC251 - the point of the task
    return f"done by {os.getpid()}"
