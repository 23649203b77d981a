"""Workflows (issue 21): what groups, dependencies and the settle trigger cost.

- group_drain: drain N no-op jobs enqueued as one group (with an on_complete callback) vs the
  same N jobs without a group, one worker (concurrency 50), interleaved repeats. Target ≥ 0.8×.
- settle_trigger: drain N jobs WITHOUT children or group with the workflow triggers enabled
  vs disabled (ALTER TABLE ... DISABLE TRIGGER USER), interleaved: the hot path's cost of the
  row trigger's WHEN clause and the per-statement tally check. Target ≥ 0.95× (within this
  host's noise).
- complete_statement: the worker's completion statement (job_complete_many, batches of 100)
  for jobs without children or group, batch by batch alternating between a session where the
  workflow triggers fire and one where they do not: the same A/B without a worker around it.
- chain: a chain of S steps drained by one worker: seconds per step (each step waits for the
  previous one's completion to be written: the handoff a dependency costs), vs S independent
  jobs drained by the same worker (per job).
"""

from __future__ import annotations

from typing import Any, NamedTuple

import asyncpg

import aioqueue
from aioqueue import JobSpec
from benchmarks._common import Reporter, cli_main, dsn, fresh_queue, median, pg_version, timed
from benchmarks.bench_tasks import tasks

GROUP_TARGET = 0.8
TRIGGER_TARGET = 0.95


async def _truncate(q: aioqueue.Queue) -> None:
    s = q.config.schema
    await q.pool.execute(f'TRUNCATE "{s}".jobs, "{s}".job_deps, "{s}".job_groups')


async def _drain(q: aioqueue.Queue, concurrency: int = 50) -> float:
    await q.pool.execute(f'VACUUM ANALYZE "{q.config.schema}".jobs')
    worker = aioqueue.Worker(q, tasks, concurrency=concurrency)
    return await timed(lambda: worker.run(until_empty=True))


async def plain_rate(q: aioqueue.Queue, n: int) -> float:
    await _truncate(q)
    for start in range(0, n, 5000):
        await q.enqueue_many(
            [{"kind": "bench", "payload": {"i": i}} for i in range(start, min(n, start + 5000))]
        )
    return n / await _drain(q)


async def group_rate(q: aioqueue.Queue, n: int) -> float:
    await _truncate(q)
    await q.enqueue_group(
        [JobSpec(kind="bench", payload={"i": i}) for i in range(n)],
        on_complete=JobSpec(kind="bench", payload={"callback": True}),
    )
    return (n + 1) / await _drain(q)


async def trigger_rate(q: aioqueue.Queue, n: int, enabled: bool) -> float:
    s = q.config.schema
    verb = "ENABLE" if enabled else "DISABLE"
    # both: the row trigger (its WHEN clause) and the per-statement group tally
    await q.pool.execute(f'ALTER TABLE "{s}".jobs {verb} TRIGGER USER')
    try:
        return await plain_rate(q, n)
    finally:
        await q.pool.execute(f'ALTER TABLE "{s}".jobs ENABLE TRIGGER USER')


class _Done(NamedTuple):
    id: int
    lease_token: int
    result: str | None


async def completion_ab(q: aioqueue.Queue, n: int) -> tuple[float, float]:
    """Complete N running jobs (no children, no group) in batches of 100 with the worker's own
    statement (job_complete_many), alternating batch by batch between a session where the
    workflow triggers fire and one where they do not (session_replication_role = replica: a
    superuser setting, no DDL, no replanning). Returns (jobs/s with, jobs/s without)."""
    s = q.config.schema
    await _truncate(q)
    await q.enqueue_many([{"kind": "bench", "payload": {"i": i}} for i in range(n)])
    await q.pool.execute(f"UPDATE \"{s}\".jobs SET state = 'running', lease_token = 1")
    await q.pool.execute(f'VACUUM ANALYZE "{s}".jobs')
    ids = [r["id"] for r in await q.pool.fetch(f'SELECT id FROM "{s}".jobs ORDER BY id')]
    spent = {True: 0.0, False: 0.0}
    done = {True: 0, False: 0}
    async with q.pool.acquire() as with_triggers, q.pool.acquire() as without:
        await without.execute("SET session_replication_role = replica")
        try:
            for index, start in enumerate(range(0, n, 100)):
                batch = [_Done(i, 1, None) for i in ids[start : start + 100]]
                fires = index % 2 == 0
                db = with_triggers if fires else without
                spent[fires] += await timed(lambda: q.queries.job_complete_many(db, batch))  # noqa: B023
                done[fires] += len(batch)
        finally:
            await without.execute("RESET session_replication_role")
    return done[True] / spent[True], done[False] / spent[False]


async def chain_seconds_per_step(q: aioqueue.Queue, steps: int) -> float:
    await _truncate(q)
    await q.enqueue_chain([JobSpec(kind="bench", payload={"i": i}) for i in range(steps)])
    return await _drain(q, concurrency=10) / steps


async def independent_seconds_per_job(q: aioqueue.Queue, steps: int) -> float:
    await _truncate(q)
    await q.enqueue_many([{"kind": "bench", "payload": {"i": i}} for i in range(steps)])
    return await _drain(q, concurrency=10) / steps


async def run(n: int, repeat: int, reporter: Reporter) -> list[dict[str, Any]]:
    server = dsn()
    q = await fresh_queue(server, "workflows")
    conn = await asyncpg.connect(server)
    version = await pg_version(conn)
    await conn.close()
    steps = 1000 if n >= 10000 else 200
    out = []
    try:
        plain: list[float] = []
        grouped: list[float] = []
        on: list[float] = []
        off: list[float] = []
        chain: list[float] = []
        single: list[float] = []
        stmt_on: list[float] = []
        stmt_off: list[float] = []
        for i in range(repeat):
            # the side that goes first alternates: this host's slow spells fall on both
            if i % 2 == 0:
                plain.append(await plain_rate(q, n))
                grouped.append(await group_rate(q, n))
                off.append(await trigger_rate(q, n, enabled=False))
                on.append(await trigger_rate(q, n, enabled=True))
            else:
                grouped.append(await group_rate(q, n))
                plain.append(await plain_rate(q, n))
                on.append(await trigger_rate(q, n, enabled=True))
                off.append(await trigger_rate(q, n, enabled=False))
            with_t, without_t = await completion_ab(q, n)
            stmt_on.append(with_t)
            stmt_off.append(without_t)
            chain.append(await chain_seconds_per_step(q, steps))
            single.append(await independent_seconds_per_job(q, steps))
        out.append(
            reporter.add(
                "group_drain", "jobs_per_s", median(grouped), "jobs/s",
                baseline=median(plain), target=GROUP_TARGET, pg=version, n=n, repeat=repeat,
                baseline_is="the same jobs without a group, same worker",
            )
        )  # fmt: skip
        out.append(
            reporter.add(
                "settle_trigger", "jobs_per_s", median(on), "jobs/s",
                baseline=median(off), target=TRIGGER_TARGET, pg=version, n=n, repeat=repeat,
                baseline_is="the same drain with the workflow triggers disabled",
            )
        )  # fmt: skip
        out.append(
            reporter.add(
                "complete_statement", "jobs_per_s", median(stmt_on), "jobs/s",
                baseline=median(stmt_off), target=TRIGGER_TARGET, pg=version, n=n,
                repeat=repeat, batch=100,
                baseline_is="job_complete_many batches alternating with a session where the "
                "workflow triggers do not fire (session_replication_role = replica)",
            )
        )  # fmt: skip
        out.append(
            reporter.add(
                "chain_step", "ms_per_step", round(median(chain) * 1000, 2), "ms",
                baseline=round(median(single) * 1000, 3), higher_is_better=False, pg=version,
                steps=steps, repeat=repeat,
                baseline_is="ms per job draining the same number of independent jobs",
            )
        )  # fmt: skip
        return out
    finally:
        await q.close()


if __name__ == "__main__":
    cli_main(__doc__, run, quick_n=2000, full_n=10000)
