"""Drain a pre-loaded backlog of no-op jobs with one worker process (default settings), vs the
raw loop: claim k=100 with FOR UPDATE SKIP LOCKED + one batched completion, on 8 connections
(the ceiling PERFORMANCE.md compares against) and on 1 connection (for context). Target ≥ 0.55×
the 8-connection loop at concurrency 50 and 10."""

from __future__ import annotations

import asyncio
from typing import Any

import asyncpg

import aioqueue
from benchmarks._common import (
    RAW_CLAIM,
    RAW_COMPLETE,
    Reporter,
    cli_main,
    dsn,
    fresh_queue,
    fresh_raw,
    load_backlog,
    median,
    pg_version,
    timed,
)
from benchmarks.bench_tasks import tasks

TARGET = 0.55


async def raw_drain(server: str, n: int, connections: int, k: int = 100) -> float:
    conn = await asyncpg.connect(server)
    await fresh_raw(conn)
    await conn.execute(
        "INSERT INTO bench_raw_jobs (kind, payload) "
        "SELECT 'bench', jsonb_build_object('i', g) FROM generate_series(1, $1) g",
        n,
    )
    await conn.execute("VACUUM ANALYZE bench_raw_jobs")
    await conn.close()

    async def loop() -> None:
        c = await asyncpg.connect(server)
        try:
            while rows := await c.fetch(RAW_CLAIM, k):
                await c.execute(RAW_COMPLETE, [r["id"] for r in rows])
        finally:
            await c.close()

    elapsed = await timed(lambda: asyncio.gather(*(loop() for _ in range(connections))))
    return n / elapsed


async def our_drain(q: aioqueue.Queue, n: int, concurrency: int) -> float:
    await q.pool.execute(f'TRUNCATE "{q.config.schema}".jobs')
    await load_backlog(q, n)
    worker = aioqueue.Worker(q, tasks, concurrency=concurrency)
    return n / await timed(lambda: worker.run(until_empty=True))


async def run(n: int, repeat: int, reporter: Reporter) -> list[dict[str, Any]]:
    server = dsn()
    q = await fresh_queue(server, "drain")
    conn = await asyncpg.connect(server)
    version = await pg_version(conn)
    await conn.close()
    out = []
    try:
        raw8: list[float] = []
        raw1: list[float] = []
        ours: dict[int, list[float]] = {50: [], 10: []}
        for _ in range(repeat):
            raw8.append(await raw_drain(server, n, 8))
            for c in ours:
                ours[c].append(await our_drain(q, n, c))
            raw1.append(await raw_drain(server, n, 1))
        for c, values in ours.items():
            out.append(
                reporter.add(
                    f"drain_c{c}",
                    "jobs_per_s",
                    median(values),
                    "jobs/s",
                    baseline=median(raw8),
                    target=TARGET,
                    pg=version,
                    n=n,
                    concurrency=c,
                    repeat=repeat,
                    baseline_is="raw k=100 claim + batched completion, 8 connections",
                    raw_1_connection=round(median(raw1)),
                )
            )
        return out
    finally:
        await q.close()


if __name__ == "__main__":
    cli_main(__doc__, run, quick_n=10000, full_n=50000)
