"""enqueue_many in batches of 1,000 vs a raw INSERT … SELECT FROM unnest (target ≥ 0.9×)."""

from __future__ import annotations

import asyncio
from typing import Any

import asyncpg

from benchmarks._common import (
    RAW_INSERT_MANY,
    Reporter,
    dsn,
    fresh_queue,
    fresh_raw,
    median,
    parser,
    pg_version,
    timed,
)

TARGET = 0.9
BATCH = 1000


async def run(n: int, repeat: int, reporter: Reporter) -> dict[str, Any]:
    server = dsn()
    q = await fresh_queue(server, "many", pool_max_size=2)
    conn = await asyncpg.connect(server)
    ours: list[float] = []
    raw: list[float] = []
    try:
        for _ in range(repeat):
            await fresh_raw(conn)
            await q.pool.execute(f'TRUNCATE "{q.config.schema}".jobs')

            async def raw_run() -> None:
                for start in range(0, n, BATCH):
                    payloads = [f'{{"i": {i}}}' for i in range(start, start + BATCH)]
                    await conn.fetch(RAW_INSERT_MANY, "bench", payloads)

            async def our_run() -> None:
                for start in range(0, n, BATCH):
                    await q.enqueue_many(
                        [
                            {"kind": "bench", "payload": {"i": i}}
                            for i in range(start, start + BATCH)
                        ]
                    )

            raw.append(n / await timed(raw_run))
            ours.append(n / await timed(our_run))
        return reporter.add(
            "enqueue_many",
            "jobs_per_s",
            median(ours),
            "jobs/s",
            baseline=median(raw),
            target=TARGET,
            pg=await pg_version(conn),
            n=n,
            batch=BATCH,
            repeat=repeat,
        )
    finally:
        await conn.close()
        await q.close()


def main() -> None:
    args = parser(__doc__ or "").parse_args()
    n = args.n or (20000 if args.quick else 100000)
    asyncio.run(run(n, args.repeat or (1 if args.quick else 3), Reporter(args.out)))


if __name__ == "__main__":
    main()
