"""Enqueue from 50 concurrent tasks on a pool of 10 vs raw INSERTs the same way (≥ 0.7×)."""

from __future__ import annotations

import asyncio
from typing import Any

import asyncpg

from benchmarks._common import (
    RAW_INSERT,
    Reporter,
    dsn,
    fresh_queue,
    fresh_raw,
    median,
    parser,
    pg_version,
    timed,
)

TARGET = 0.7
TASKS = 50


async def run(n: int, repeat: int, reporter: Reporter) -> dict[str, Any]:
    server = dsn()
    q = await fresh_queue(server, "concurrent", pool_min_size=10, pool_max_size=10)
    pool = await asyncpg.create_pool(server, min_size=10, max_size=10)
    assert pool is not None
    ours: list[float] = []
    raw: list[float] = []
    per_task = n // TASKS
    try:
        for _ in range(repeat):
            async with pool.acquire() as conn:
                await fresh_raw(conn)

            async def raw_worker(t: int) -> None:
                for i in range(per_task):
                    await pool.fetchval(RAW_INSERT, "bench", f'{{"i": {t * per_task + i}}}')

            async def our_worker(t: int) -> None:
                for i in range(per_task):
                    await q.enqueue("bench", {"i": t * per_task + i})

            async def raw_run() -> None:
                await asyncio.gather(*(raw_worker(t) for t in range(TASKS)))

            async def our_run() -> None:
                await asyncio.gather(*(our_worker(t) for t in range(TASKS)))

            raw.append(per_task * TASKS / await timed(raw_run))
            ours.append(per_task * TASKS / await timed(our_run))
        async with pool.acquire() as conn:
            version = await pg_version(conn)
        return reporter.add(
            "enqueue_concurrent",
            "jobs_per_s",
            median(ours),
            "jobs/s",
            baseline=median(raw),
            target=TARGET,
            pg=version,
            n=per_task * TASKS,
            tasks=TASKS,
            pool=10,
            repeat=repeat,
        )
    finally:
        await pool.close()
        await q.close()


def main() -> None:
    args = parser(__doc__ or "").parse_args()
    n = args.n or (5000 if args.quick else 20000)
    asyncio.run(run(n, args.repeat or (1 if args.quick else 3), Reporter(args.out)))


if __name__ == "__main__":
    main()
