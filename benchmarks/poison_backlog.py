"""RELIABILITY E10: registered jobs drain behind 100,000 due jobs of a kind no worker handles,
vs the same drain on a clean table (target ≥ 0.8×). Both runs use one worker process with
default settings; the baseline is the clean-table drain of the same run (interleaved), and
the raw k=100 claim loop on 8 connections is reported beside it."""

from __future__ import annotations

from typing import Any

import asyncpg

import aioqueue
from benchmarks._common import (
    Reporter,
    cli_main,
    dsn,
    fresh_queue,
    load_backlog,
    median,
    pg_version,
    timed,
)
from benchmarks.bench_tasks import tasks
from benchmarks.drain import raw_drain

TARGET = 0.8
POISON = 100_000


async def drain(q: aioqueue.Queue, n: int, *, poison: bool) -> float:
    s = q.config.schema
    await q.pool.execute(f'TRUNCATE "{s}".jobs')
    if poison:  # older than the worker's jobs: first in claim order, were they claimable
        await q.pool.execute(
            f"""INSERT INTO "{s}".jobs (kind, payload, state, run_at)
            SELECT 'no.handler', '{{}}', 'pending', now() - interval '1 hour'
            FROM generate_series(1, $1::integer)""",
            POISON,
        )
    await load_backlog(q, n)
    worker = aioqueue.Worker(q, tasks)
    return n / await timed(lambda: worker.run(until_empty=True))


async def run(n: int, repeat: int, reporter: Reporter) -> dict[str, Any]:
    server = dsn()
    q = await fresh_queue(server, "poison")
    conn = await asyncpg.connect(server)
    version = await pg_version(conn)
    await conn.close()
    try:
        clean: list[float] = []
        behind: list[float] = []
        raw: list[float] = []
        for _ in range(repeat):
            raw.append(await raw_drain(server, n, 8))
            clean.append(await drain(q, n, poison=False))
            behind.append(await drain(q, n, poison=True))
        return reporter.add(
            "poison_backlog",
            "jobs_per_s",
            median(behind),
            "jobs/s",
            baseline=median(clean),
            target=TARGET,
            pg=version,
            n=n,
            poison=POISON,
            repeat=repeat,
            baseline_is="the same drain on a table without the unregistered backlog",
            raw_8_connections=round(median(raw)),
        )
    finally:
        await q.close()


if __name__ == "__main__":
    cli_main(__doc__, run, quick_n=2000, full_n=10000)
