"""enqueue_many in batches of 1,000 vs a raw INSERT … SELECT FROM unnest (target ≥ 0.9×)."""

from __future__ import annotations

from typing import Any

import asyncpg

from benchmarks._common import (
    RAW_INSERT_MANY,
    Reporter,
    cli_main,
    compare,
    dsn,
    fresh_queue,
    fresh_raw,
    pg_version,
)

TARGET = 0.9
BATCH = 1000


async def run(n: int, repeat: int, reporter: Reporter) -> dict[str, Any]:
    n = max(BATCH, n // BATCH * BATCH)  # whole batches
    server = dsn()
    q = await fresh_queue(server, "many")  # default settings, as users run it
    conn = await asyncpg.connect(server)

    async def setup() -> None:
        await fresh_raw(conn)
        await q.pool.execute(f'TRUNCATE "{q.config.schema}".jobs')

    async def raw(first: int, count: int) -> None:
        for start in range(first, first + count, BATCH):
            payloads = [f'{{"i": {i}}}' for i in range(start, start + BATCH)]
            await conn.fetch(RAW_INSERT_MANY, "bench", payloads)

    async def ours(first: int, count: int) -> None:
        for start in range(first, first + count, BATCH):
            await q.enqueue_many(
                [{"kind": "bench", "payload": {"i": i}} for i in range(start, start + BATCH)]
            )

    try:
        value, baseline = await compare(repeat, n, setup=setup, raw=raw, ours=ours, step=BATCH)
        return reporter.add(
            "enqueue_many",
            "jobs_per_s",
            value,
            "jobs/s",
            baseline=baseline,
            target=TARGET,
            pg=await pg_version(conn),
            n=n,
            batch=BATCH,
            repeat=repeat,
        )
    finally:
        await conn.close()
        await q.close()


if __name__ == "__main__":
    cli_main(__doc__, run, quick_n=20000, full_n=100000)
