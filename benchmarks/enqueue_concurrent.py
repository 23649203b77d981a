"""Enqueue from 50 concurrent tasks on a pool of 10 vs raw INSERTs the same way (≥ 0.7×)."""

from __future__ import annotations

import asyncio
from typing import Any

import asyncpg

from benchmarks._common import (
    CHUNKS,
    RAW_INSERT,
    Reporter,
    cli_main,
    compare,
    dsn,
    fresh_queue,
    fresh_raw,
    pg_version,
)

TARGET = 0.7
TASKS = 50


async def run(n: int, repeat: int, reporter: Reporter) -> dict[str, Any]:
    server = dsn()
    q = await fresh_queue(server, "concurrent", pool_min_size=10, pool_max_size=10)
    pool = await asyncpg.create_pool(server, min_size=10, max_size=10)
    assert pool is not None
    step = max(1, n // TASKS // CHUNKS)  # jobs per task per slice
    total = step * CHUNKS * TASKS  # N, rounded to whole slices

    async def setup() -> None:
        async with pool.acquire() as conn:
            await fresh_raw(conn)

    async def raw_worker(first: int) -> None:
        for i in range(first, first + step):
            await pool.fetchval(RAW_INSERT, "bench", f'{{"i": {i}}}')

    async def our_worker(first: int) -> None:
        for i in range(first, first + step):
            await q.enqueue("bench", {"i": i})

    # each slice: the 50 tasks enqueue `count` jobs between them, `step` each
    async def raw(start: int, count: int) -> None:
        await asyncio.gather(*(raw_worker(first) for first in range(start, start + count, step)))

    async def ours(start: int, count: int) -> None:
        await asyncio.gather(*(our_worker(first) for first in range(start, start + count, step)))

    try:
        value, baseline = await compare(
            repeat, total, setup=setup, raw=raw, ours=ours, step=step * TASKS
        )
        async with pool.acquire() as conn:
            version = await pg_version(conn)
        return reporter.add(
            "enqueue_concurrent",
            "jobs_per_s",
            value,
            "jobs/s",
            baseline=baseline,
            target=TARGET,
            pg=version,
            n=total,
            tasks=TASKS,
            pool=10,
            repeat=repeat,
        )
    finally:
        await pool.close()
        await q.close()


if __name__ == "__main__":
    cli_main(__doc__, run, quick_n=5000, full_n=20000)
