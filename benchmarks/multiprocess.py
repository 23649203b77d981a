"""4 worker processes (the real CLI, concurrency 50 each) drain a large backlog, vs the raw
claim k=100 + batched completion loop on 8 connections (target ≥ 0.8×, and no deadlocks).
The rate counts from the start of the processes (their interpreter start-up included) to the exit of
the last (`--once`: each exits when nothing is due and its jobs are done); the rate from the moment
all four have registered is reported beside it."""

from __future__ import annotations

import asyncio
import compileall
import os
import signal
import sys
import time
from pathlib import Path
from typing import Any

import asyncpg

from benchmarks._common import Reporter, dsn, fresh_queue, load_backlog, median, parser, pg_version
from benchmarks.drain import raw_drain

TARGET = 0.8
PROCESSES = 4
ROOT = Path(__file__).resolve().parent.parent


async def our_drain(
    server: str, schema: str, n: int, q: Any, processes: int = PROCESSES
) -> tuple[float, float, int]:
    """(jobs/s once all processes run, jobs/s including their start-up, jobs not completed)."""
    await q.pool.execute(f'TRUNCATE "{schema}".jobs')
    await load_backlog(q, n)
    # An installed package has its bytecode; a source tree run with PYTHONDONTWRITEBYTECODE
    # (as here) would compile aioqueue in each process at start-up (RESULTS.md, "Figures
    # behind the harness").
    for package in ("aioqueue", "benchmarks"):
        compileall.compile_dir(ROOT / package, quiet=1)
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
            "--once",
            cwd=ROOT,
            env={**os.environ, "PYTHONPATH": str(ROOT)},
        )
        for _ in range(processes)
    ]
    jobs = f'"{schema}".jobs'
    workers_sql = f'SELECT count(*) FROM "{schema}".workers'
    left_sql = f"""SELECT (SELECT count(*) FROM {jobs} WHERE state IN ('pending', 'scheduled'))
                        + (SELECT count(*) FROM {jobs} WHERE state = 'running')"""
    try:
        # registered: about to claim (or one has already drained and left, with a small N)
        while await q.pool.fetchval(workers_sql) < processes:
            if any(p.returncode is not None for p in procs):
                break
            await asyncio.sleep(0.01)
        ready = time.perf_counter()
        left = await q.pool.fetchval(left_sql)
        # The end is the last exit: nothing watches the table while they drain (polling it
        # costs the server CPU the drain would otherwise get).
        codes = await asyncio.gather(*(p.wait() for p in procs))
        end = time.perf_counter()
    finally:
        for p in procs:
            if p.returncode is None:
                p.send_signal(signal.SIGTERM)
                await p.wait()
    failed = await q.pool.fetchval(
        f"SELECT count(*) FROM \"{schema}\".jobs WHERE state <> 'completed'"
    )
    assert all(c == 0 for c in codes), codes
    return left / (end - ready), n / (end - t0), int(failed)


async def run(n: int, repeat: int, reporter: Reporter) -> dict[str, Any]:
    server = dsn()
    q = await fresh_queue(server, "multi", pool_max_size=4)
    conn = await asyncpg.connect(server)
    version = await pg_version(conn)
    await conn.close()
    try:
        raw: list[float] = []
        ours: list[float] = []
        steady: list[float] = []
        not_completed = 0
        for _ in range(repeat):
            raw.append(await raw_drain(server, n, 8))
            rate, from_start, bad = await our_drain(server, q.config.schema, n, q)
            steady.append(rate)
            ours.append(from_start)
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
            measured="from the start of the 4 processes (interpreter start-up included)",
            jobs_per_s_once_all_claim=round(median(steady)),
        )
    finally:
        await q.close()


def main() -> None:
    args = parser(__doc__ or "").parse_args()
    n = args.n or (20000 if args.quick else 200000)
    asyncio.run(run(n, args.repeat or 1, Reporter(args.out)))


if __name__ == "__main__":
    main()
