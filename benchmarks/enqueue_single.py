"""Enqueue one job at a time, sequentially, vs a raw single-row INSERT (target ≥ 0.95×)."""

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

TARGET = 0.95


async def run(n: int, repeat: int, reporter: Reporter) -> dict[str, Any]:
    server = dsn()
    q = await fresh_queue(server, "single", pool_max_size=2)
    conn = await asyncpg.connect(server)
    ours: list[float] = []
    raw: list[float] = []
    try:
        for _ in range(repeat):
            await fresh_raw(conn)
            stmt = await conn.prepare(RAW_INSERT)

            async def raw_run(stmt: asyncpg.prepared_stmt.PreparedStatement = stmt) -> None:
                for i in range(n):
                    await stmt.fetchval("bench", f'{{"i": {i}}}')

            async def our_run() -> None:
                for i in range(n):
                    await q.enqueue("bench", {"i": i})

            raw.append(n / await timed(raw_run))
            ours.append(n / await timed(our_run))
        return reporter.add(
            "enqueue_single",
            "jobs_per_s",
            median(ours),
            "jobs/s",
            baseline=median(raw),
            target=TARGET,
            pg=await pg_version(conn),
            n=n,
            repeat=repeat,
        )
    finally:
        await conn.close()
        await q.close()


def main() -> None:
    args = parser(__doc__ or "").parse_args()
    n = args.n or (1000 if args.quick else 5000)
    asyncio.run(run(n, args.repeat or (1 if args.quick else 3), Reporter(args.out)))


if __name__ == "__main__":
    main()
