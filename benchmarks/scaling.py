"""Scaling curve: 1, 2, 4 and 8 worker processes (the real CLI, concurrency 50 each, `--once`)
drain the same backlog of no-op jobs on one server, beside the raw loop (claim k=100 with FOR
UPDATE SKIP LOCKED + one batched completion) on as many connections. One JSON line per point:
the rate once every process claims (the value), the rate from the processes' start (interpreter
start-up included), and the raw loop's rate on as many connections (the baseline)."""

from __future__ import annotations

import os
from typing import Any

import asyncpg

from benchmarks._common import Reporter, cli_main, dsn, fresh_queue, median, pg_version
from benchmarks.drain import raw_drain
from benchmarks.multiprocess import our_drain

PROCESSES = (1, 2, 4, 8)


async def run(
    n: int, repeat: int, reporter: Reporter, processes: tuple[int, ...] = PROCESSES
) -> list[dict[str, Any]]:
    server = dsn()
    q = await fresh_queue(server, "scaling", pool_max_size=4)
    conn = await asyncpg.connect(server)
    version = await pg_version(conn)
    await conn.close()
    out = []
    try:
        for p in processes:
            raw: list[float] = []
            steady: list[float] = []
            from_start: list[float] = []
            not_completed = 0
            for _ in range(repeat):
                raw.append(await raw_drain(server, n, p))
                rate, started, bad = await our_drain(server, q.config.schema, n, q, processes=p)
                steady.append(rate)
                from_start.append(started)
                not_completed += bad
            out.append(
                reporter.add(
                    f"scaling_p{p}",
                    "jobs_per_s",
                    median(steady),
                    "jobs/s",
                    baseline=median(raw),
                    pg=version,
                    n=n,
                    repeat=repeat,
                    processes=p,
                    concurrency=50,
                    not_completed=not_completed,
                    measured="from the moment every process has registered to the last exit",
                    jobs_per_s_from_process_start=round(median(from_start)),
                    baseline_is=f"raw k=100 claim + batched completion, {p} connection(s)",
                    cpus=os.cpu_count(),
                )
            )
        return out
    finally:
        await q.close()


if __name__ == "__main__":
    cli_main(__doc__, run, quick_n=20000, full_n=100000)
