"""Steady state: producers enqueue at a fixed rate while one worker drains, with retention on,
for a fixed time. Reports achieved throughput against the offered rate, p99 wake latency, and
the size of the jobs table at the end (pruning keeps it bounded)."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import asyncpg

import aioqueue
from benchmarks._common import Reporter, dsn, fresh_queue, parser, pg_version
from benchmarks.latency import pct


async def run(seconds: float, rate: float, reporter: Reporter) -> dict[str, Any]:
    server = dsn()
    q = await fresh_queue(server, "mixed")
    tasks = aioqueue.Tasks()
    sent: dict[int, float] = {}
    latencies: list[float] = []

    @tasks.task("bench")
    async def bench(ctx: aioqueue.JobContext, payload: Any) -> None:
        latencies.append(time.perf_counter() - sent[int(payload)])

    worker = aioqueue.Worker(q, tasks, retention=2, prune_interval=1)
    runner = asyncio.create_task(worker.run())
    conn = await asyncpg.connect(server)
    version = await pg_version(conn)
    try:
        t0 = time.perf_counter()
        i = 0
        while time.perf_counter() - t0 < seconds:
            batch = []
            for _ in range(int(rate / 100)):
                sent[i] = time.perf_counter()
                batch.append({"kind": "bench", "payload": i})
                i += 1
            await q.enqueue_many(batch)
            await asyncio.sleep(max(0.0, t0 + i / rate - time.perf_counter()))
        elapsed = time.perf_counter() - t0
        await asyncio.sleep(0.5)
        rows = await conn.fetchval(f'SELECT count(*) FROM "{q.config.schema}".jobs')
        return reporter.add(
            "mixed_steady_state",
            "jobs_per_s",
            len(latencies) / elapsed,
            "jobs/s",
            baseline=rate,
            pg=version,
            seconds=seconds,
            offered_rate=rate,
            p99_wake_ms=round(pct(latencies, 99) * 1000, 2),
            rows_at_end=int(rows),
            retention_s=2,
        )
    finally:
        await worker.stop()
        await runner
        await conn.close()
        await q.close()


def main() -> None:
    p = parser(__doc__ or "")
    p.add_argument("--seconds", type=float, default=None)
    p.add_argument("--rate", type=float, default=2000.0)
    args = p.parse_args()
    seconds = args.seconds or (5 if args.quick else 30)
    asyncio.run(run(seconds, args.rate, Reporter(args.out)))


if __name__ == "__main__":
    main()
