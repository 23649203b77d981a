"""Flow control (issue 20): what limits cost a drain of no-op jobs (one worker, concurrency 50).

flow_limits_far_above: the same backlog drained with no limits, then with concurrency=1,000,000
and a rate of 10,000,000/s on the kind (every claim goes through claim_gated and its row lock,
no limit ever binds). Target: >= 0.9x (costs <= 10 %).
flow_per_key: jobs spread over 1,000 concurrency keys drained with key_concurrency=1 (the key
round robin runs on every claim) vs the same jobs with no limits. Target: >= 0.5x.
A/B alternates the two sides on each repeat; the ratio is limited over unlimited."""

from __future__ import annotations

from typing import Any

import asyncpg

import aioqueue
from benchmarks._common import Reporter, cli_main, dsn, fresh_queue, median, pg_version, timed
from benchmarks.bench_tasks import tasks

KEYS = 1000


async def load(q: aioqueue.Queue, n: int, *, keyed: bool) -> None:
    await q.pool.execute(f'TRUNCATE "{q.config.schema}".jobs')
    for start in range(0, n, 5000):
        await q.enqueue_many(
            [
                aioqueue.JobSpec(
                    kind="bench",
                    payload={"i": i},
                    concurrency_key=f"tenant:{i % KEYS}" if keyed else None,
                )
                for i in range(start, min(n, start + 5000))
            ]
        )
    await q.pool.execute(f'VACUUM ANALYZE "{q.config.schema}".jobs')


async def drain(q: aioqueue.Queue, n: int, limits: dict[str, Any] | None, keyed: bool) -> float:
    await q.reset_limits("bench")
    if limits:
        await q.set_limits("bench", **limits)
    await load(q, n, keyed=keyed)
    worker = aioqueue.Worker(q, tasks, concurrency=50)
    rate = n / await timed(lambda: worker.run(until_empty=True))
    left = await q.pool.fetchval(
        f"SELECT count(*) FROM \"{q.config.schema}\".jobs WHERE state <> 'completed'"
    )
    assert left == 0, left
    return rate


async def run(n: int, repeat: int, reporter: Reporter) -> list[dict[str, Any]]:
    server = dsn()
    q = await fresh_queue(server, "flow")
    conn = await asyncpg.connect(server)
    version = await pg_version(conn)
    await conn.close()
    far = {"concurrency": 1_000_000, "rate_limit": (10_000_000, 1.0)}
    cases = {
        "flow_limits_far_above": (far, False, 0.9),
        "flow_per_key": ({"key_concurrency": 1}, True, 0.5),
    }
    out = []
    try:
        for bench, (limits, keyed, target) in cases.items():
            free: list[float] = []
            limited: list[float] = []
            for i in range(repeat):
                if i % 2:
                    limited.append(await drain(q, n, limits, keyed))
                    free.append(await drain(q, n, None, keyed))
                else:
                    free.append(await drain(q, n, None, keyed))
                    limited.append(await drain(q, n, limits, keyed))
            out.append(
                reporter.add(
                    bench,
                    "jobs_per_s",
                    median(limited),
                    "jobs/s",
                    baseline=median(free),
                    target=target,
                    pg=version,
                    n=n,
                    repeat=repeat,
                    keys=KEYS if keyed else 0,
                    baseline_is="the same drain without limits",
                    limits=str(limits),
                )
            )
        return out
    finally:
        await q.close()


if __name__ == "__main__":
    cli_main(__doc__, run, quick_n=10000, full_n=30000)
