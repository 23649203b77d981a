"""History soak (T3 tier, not CI; issue 22): push N jobs (10 million by default) through
enqueue -> drain with a short retention, so history partitions roll and are dropped under load,
and sample every ``--every`` seconds: the hot table's size and dead tuples, the history's size
and partition count, the claim's p99 and the rate. One JSON line per sample on stdout (and in
``--out``); a Markdown table of the samples at the end.

    python -m benchmarks.soak_history --dsn postgresql://aioqueue@127.0.0.1:55461/postgres \
        --jobs 10000000 --out soak_history.jsonl

The worker runs in this process (one Worker, ``--concurrency`` slots) beside a producer that
keeps about ``--backlog`` jobs waiting. Completed jobs are kept ``--retention`` seconds; the
history's partitions are ``--partition`` seconds wide (jobs_history_settings).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time
from typing import Any

import asyncpg

import aioqueue

tasks = aioqueue.Tasks()


@tasks.task("soak")
async def soak(ctx: aioqueue.JobContext, payload: Any) -> None:
    return None


def p99(values: list[float]) -> float:
    if not values:
        return 0.0
    values = sorted(values)
    return values[min(len(values) - 1, int(len(values) * 0.99))]


class Counter:
    def __init__(self) -> None:
        self.done = 0

    def __call__(self, event: aioqueue.Event) -> None:
        if event.type in ("completed", "failed", "cancelled"):
            self.done += 1


async def figures(conn: asyncpg.Connection, schema: str) -> dict[str, Any]:
    await conn.execute("SELECT pg_stat_clear_snapshot()")
    hot = await conn.fetchrow(
        "SELECT pg_total_relation_size(s.relid) AS size, s.n_live_tup AS live, "
        "s.n_dead_tup AS dead, s.autovacuum_count AS autovacuums "
        "FROM pg_stat_user_tables s WHERE s.schemaname = $1 AND s.relname = 'jobs'",
        schema,
    )
    hist = await conn.fetchrow(
        f"SELECT count(*) AS partitions, coalesce(sum(pg_total_relation_size(format('%I.%I', "
        f"$1::text, p.name)::regclass)), 0)::bigint AS size "
        f'FROM "{schema}".jobs_history_partitions AS p',
        schema,
    )
    return {
        "hot_mb": round(hot["size"] / 2**20, 1),
        "hot_live": hot["live"],
        "hot_dead": hot["dead"],
        "autovacuums": hot["autovacuums"],
        "history_mb": round(hist["size"] / 2**20, 1),
        "partitions": hist["partitions"],
    }


def _append(path: str, line: str) -> None:
    with open(path, "a") as out:
        out.write(line + "\n")


async def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--dsn", required=True)
    ap.add_argument("--schema", default="soak_history")
    ap.add_argument("--jobs", type=int, default=10_000_000)
    ap.add_argument("--every", type=float, default=60.0)
    ap.add_argument("--retention", type=float, default=300.0)
    ap.add_argument("--partition", type=float, default=60.0)
    ap.add_argument("--concurrency", type=int, default=200)
    ap.add_argument("--backlog", type=int, default=20_000)
    # the library's default (config.HISTORY_MOVE_AFTER, 60 s); the first run of RELIABILITY.md
    # used 0 (moved at once)
    ap.add_argument("--move-after", type=float, default=aioqueue.config.HISTORY_MOVE_AFTER)
    ap.add_argument("--out", default="soak_history.jsonl")
    args = ap.parse_args()

    q = await aioqueue.Queue.connect(args.dsn, schema=args.schema, pool_max_size=8)
    conn = await asyncpg.connect(args.dsn)
    await conn.execute(
        f'UPDATE "{args.schema}".jobs_history_settings SET partition_seconds = $1', args.partition
    )
    counter = Counter()
    worker = aioqueue.Worker(
        q,
        tasks,
        concurrency=args.concurrency,
        retention=args.retention,
        failed_retention=args.retention,
        cancelled_retention=args.retention,
        prune_interval=10.0,
        history_move_after=args.move_after,
        hooks=[counter],
    )
    claims: list[tuple[float, float]] = []
    original = q.queries.job_claim

    async def timed(*a: Any, **kw: Any) -> Any:
        t = time.perf_counter()
        try:
            return await original(*a, **kw)
        finally:
            claims.append((time.monotonic(), time.perf_counter() - t))

    q.queries.job_claim = timed  # type: ignore[method-assign]
    enqueued = 0
    specs = [{"kind": "soak"}] * 1000

    async def produce() -> None:
        nonlocal enqueued
        while enqueued < args.jobs:
            if enqueued - counter.done > args.backlog:
                await asyncio.sleep(0.05)
                continue
            n = min(1000, args.jobs - enqueued)
            await q.enqueue_many(specs[:n])
            enqueued += n

    samples: list[dict[str, Any]] = []
    run = asyncio.create_task(worker.run())
    producer = asyncio.create_task(produce())
    t0 = last_t = time.monotonic()
    last_done = 0
    # samples are appended to --out as they come: a crash keeps them
    while counter.done < args.jobs:
        await asyncio.sleep(args.every)
        now = time.monotonic()
        window = [s * 1000 for at, s in claims if at >= last_t]
        del claims[:]
        sample = {
            "t_s": round(now - t0),
            "done": counter.done,
            "jobs_per_s": round((counter.done - last_done) / (now - last_t)),
            "claim_p99_ms": round(p99(window), 2),
            "moved": worker.pruner.moved,
            "dropped": worker.pruner.deleted,
            **await figures(conn, args.schema),
        }
        last_t, last_done = now, counter.done
        samples.append(sample)
        line = json.dumps(sample)
        print(line, flush=True)
        _append(args.out, line)
    producer.cancel()
    await worker.stop()
    await run
    print(
        "| t (min) | jobs done | jobs/s | hot table MB | dead tuples | claim p99 ms | "
        "history MB | partitions |"
    )
    print("|---|---|---|---|---|---|---|---|")
    for s in samples:
        print(
            f"| {s['t_s'] / 60:.0f} | {s['done']:,} | {s['jobs_per_s']} | {s['hot_mb']} | "
            f"{s['hot_dead']} | {s['claim_p99_ms']} | {s['history_mb']} | {s['partitions']} |"
        )
    await conn.close()
    await q.close()


if __name__ == "__main__":
    asyncio.run(main())
