"""4 worker processes (the real CLI, concurrency 50 each) drain a large backlog, vs the raw
claim k=100 + batched completion loop on 8 connections (target ≥ 0.8×, and no deadlocks)."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
import time
from pathlib import Path
from typing import Any

import asyncpg

from benchmarks._common import Reporter, dsn, fresh_queue, median, parser, pg_version
from benchmarks.drain import raw_drain

TARGET = 0.8
PROCESSES = 4
ROOT = Path(__file__).resolve().parent.parent


async def our_drain(server: str, schema: str, n: int, q: Any) -> tuple[float, int]:
    await q.pool.execute(f'TRUNCATE "{schema}".jobs')
    for start in range(0, n, 5000):
        await q.enqueue_many(
            [{"kind": "bench", "payload": {"i": i}} for i in range(start, min(n, start + 5000))]
        )
    await q.pool.execute(f'VACUUM ANALYZE "{schema}".jobs')
    t0 = time.perf_counter()
    procs = [
        await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "aioqueue",
            "--dsn",
            server,
            "--schema",
            schema,
            "worker",
            "benchmarks.bench_tasks:tasks",
            "--concurrency",
            "50",
            cwd=ROOT,
            env={**os.environ, "PYTHONPATH": str(ROOT)},
        )
        for _ in range(PROCESSES)
    ]
    count_sql = f"SELECT count(*) FROM \"{schema}\".jobs WHERE state = 'completed'"
    try:
        while await q.pool.fetchval(count_sql) < n:
            await asyncio.sleep(0.1)  # watching subprocesses: poll the database
        elapsed = time.perf_counter() - t0
    finally:
        for p in procs:
            p.send_signal(signal.SIGTERM)
        codes = [await p.wait() for p in procs]
    failed = await q.pool.fetchval(
        f"SELECT count(*) FROM \"{schema}\".jobs WHERE state <> 'completed'"
    )
    assert all(c == 0 for c in codes), codes
    return n / elapsed, int(failed)


async def run(n: int, repeat: int, reporter: Reporter) -> dict[str, Any]:
    server = dsn()
    q = await fresh_queue(server, "multi", pool_max_size=4)
    conn = await asyncpg.connect(server)
    version = await pg_version(conn)
    await conn.close()
    try:
        raw: list[float] = []
        ours: list[float] = []
        not_completed = 0
        for _ in range(repeat):
            raw.append(await raw_drain(server, n, 8))
            rate, bad = await our_drain(server, q.config.schema, n, q)
            ours.append(rate)
            not_completed += bad
        return reporter.add(
            "multiprocess_drain",
            "jobs_per_s",
            median(ours),
            "jobs/s",
            baseline=median(raw),
            target=TARGET,
            pg=version,
            n=n,
            processes=PROCESSES,
            concurrency=50,
            not_completed=not_completed,
        )
    finally:
        await q.close()


def main() -> None:
    args = parser(__doc__ or "").parse_args()
    n = args.n or (20000 if args.quick else 200000)
    asyncio.run(run(n, args.repeat or 1, Reporter(args.out)))


if __name__ == "__main__":
    main()
