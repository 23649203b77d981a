"""Idle-worker wake latency: enqueue call start → handler start, at ~100 jobs/s, p50/p95/p99
(targets p50 ≤ 2.5 ms, p99 ≤ 5 ms). Baselines from the same run: the enqueue call alone, and a
raw INSERT + NOTIFY → LISTEN round trip."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import asyncpg

import aioqueue
from benchmarks._common import Reporter, dsn, fresh_queue, fresh_raw, parser, pg_version

RATE = 100.0


def pct(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))]


async def run(n: int, repeat: int, reporter: Reporter) -> list[dict[str, Any]]:
    server = dsn()
    q = await fresh_queue(server, "latency")
    tasks = aioqueue.Tasks()
    started: dict[int, float] = {}
    arrived = asyncio.Event()

    @tasks.task("ping")
    async def ping(ctx: aioqueue.JobContext, payload: Any) -> None:
        started[int(payload)] = time.perf_counter()
        arrived.set()

    worker = aioqueue.Worker(q, tasks)
    runner = asyncio.create_task(worker.run())
    conn = await asyncpg.connect(server)
    listener = await asyncpg.connect(server)
    version = await pg_version(conn)
    latencies: list[float] = []
    calls: list[float] = []
    raw: list[float] = []
    try:
        await asyncio.sleep(0.5)  # let the worker reach its idle state before measuring
        for i in range(n):
            arrived.clear()
            t0 = time.perf_counter()
            await q.enqueue("ping", i)
            calls.append(time.perf_counter() - t0)
            await asyncio.wait_for(arrived.wait(), 5)
            latencies.append(started[i] - t0)
            await asyncio.sleep(max(0.0, 1 / RATE - (time.perf_counter() - t0)))
        await fresh_raw(conn)
        got = asyncio.Event()
        await listener.add_listener("bench_raw", lambda *a: got.set())
        for i in range(n):
            got.clear()
            t0 = time.perf_counter()
            async with conn.transaction():
                await conn.execute(
                    "INSERT INTO bench_raw_jobs (kind, payload) VALUES ('ping', $1::text::jsonb)",
                    str(i),
                )
                await conn.execute("NOTIFY bench_raw")
            await asyncio.wait_for(got.wait(), 5)
            raw.append(time.perf_counter() - t0)
            await asyncio.sleep(max(0.0, 1 / RATE - (time.perf_counter() - t0)))
        out = []
        for p, target in ((50, 2.5), (95, None), (99, 5.0)):
            value = pct(latencies, p) * 1000
            out.append(
                reporter.add(
                    "wake_latency",
                    f"p{p}_ms",
                    value,
                    "ms",
                    baseline=pct(raw, p) * 1000,
                    higher_is_better=False,
                    pg=version,
                    n=n,
                    rate=RATE,
                    target_ms=target,
                    pass_ms=None if target is None else value <= target,
                    enqueue_call_p50_ms=round(pct(calls, 50) * 1000, 3),
                    baseline_is="raw INSERT + NOTIFY -> LISTEN round trip",
                )
            )
        return out
    finally:
        await worker.stop()
        await runner
        await listener.close()
        await conn.close()
        await q.close()


def main() -> None:
    args = parser(__doc__ or "").parse_args()
    n = args.n or (200 if args.quick else 1000)
    asyncio.run(run(n, 1, Reporter(args.out)))


if __name__ == "__main__":
    main()
