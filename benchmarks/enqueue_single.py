"""Enqueue one job at a time, sequentially, vs a raw single-row INSERT (target ≥ 0.95×)."""

from __future__ import annotations

from typing import Any

import asyncpg

from benchmarks._common import (
    RAW_INSERT,
    Reporter,
    cli_main,
    compare,
    dsn,
    fresh_queue,
    fresh_raw,
    pg_version,
)

TARGET = 0.95


async def run(n: int, repeat: int, reporter: Reporter) -> dict[str, Any]:
    server = dsn()
    q = await fresh_queue(server, "single")  # default settings, as users run it
    conn = await asyncpg.connect(server)

    prepared: list[Any] = []  # the raw INSERT, prepared once per fresh table, outside timing

    async def setup() -> None:
        await fresh_raw(conn)
        prepared[:] = [await conn.prepare(RAW_INSERT)]

    async def raw(start: int, count: int) -> None:
        stmt = prepared[0]
        for i in range(start, start + count):
            await stmt.fetchval("bench", f'{{"i": {i}}}')

    async def ours(start: int, count: int) -> None:
        for i in range(start, start + count):
            await q.enqueue("bench", {"i": i})

    try:
        value, baseline = await compare(repeat, n, setup=setup, raw=raw, ours=ours)
        return reporter.add(
            "enqueue_single",
            "jobs_per_s",
            value,
            "jobs/s",
            baseline=baseline,
            target=TARGET,
            pg=await pg_version(conn),
            n=n,
            repeat=repeat,
        )
    finally:
        await conn.close()
        await q.close()


if __name__ == "__main__":
    cli_main(__doc__, run, quick_n=1000, full_n=5000)
