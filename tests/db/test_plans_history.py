"""Plan guards for the history (migration 0011), EXPLAIN not timings: reading a job by id probes
each history partition's id index (no partition is scanned whole), and one move batch reads
that batch of the hot table's finished rows, oldest first, through jobs_finished.

The schema holds 25 hourly history partitions with 200,000 rows, and 200,000 finished rows
still in the hot table; every statement runs in a rolled-back transaction.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import AsyncIterator, Iterator
from typing import Any

import asyncpg
import pytest

import aioqueue
from tests.support.plan_schemas import built_schema, queue_on
from tests.support.plans import (
    assert_no_seq_scan_on_jobs,
    assert_reads_past_waiting_parents,
    explain,
    explain_prepared,
    rows_read_by,
    waiting_parents_sql,
)

pytestmark = pytest.mark.anyio
ROWS = 200_000
HOURS = 24
PARENTS = 5_000  # the oldest finished jobs in the hot table, each with a waiting child
IN_FLIGHT = 100_000  # edges between scheduled jobs


@pytest.fixture(scope="module")
def history_schema(dsn: str) -> Iterator[str]:

    async def fill(q: aioqueue.Queue, schema: str) -> None:
        db = q.pool
        await db.execute(f'UPDATE "{schema}".jobs_history_settings SET partition_seconds = 3600')
        now = await db.fetchval("SELECT now()")
        for hours_ago in range(HOURS, -1, -1):  # one hourly partition per step
            await q.queries.history_prepare(db, ahead=0, now=now - dt.timedelta(hours=hours_ago))
        await db.execute(
            f"""
            INSERT INTO "{schema}".jobs_history (id, kind, state, finished_at, result)
            SELECT g, 'k', 'completed',
                   now() - make_interval(secs => g * {HOURS * 3600.0 / ROWS}), '{{}}'
            FROM generate_series(1, {ROWS}) AS g;
            INSERT INTO "{schema}".jobs (kind, state, finished_at)
            OVERRIDING SYSTEM VALUE
            SELECT 'k', 'completed', now() - interval '30 minutes' + g * interval '1 ms'
            FROM generate_series(1, {ROWS}) AS g;
            SELECT setval(pg_get_serial_sequence('"{schema}".jobs', 'id'), {ROWS} + 1);
            INSERT INTO "{schema}".jobs (kind, state)
            SELECT 'k', 'pending' FROM generate_series(1, 500);
            -- the oldest finished jobs are parents of waiting children (they stay in jobs);
            -- many more edges join scheduled jobs (workflows in flight)
            INSERT INTO "{schema}".jobs (kind, state, run_at)
            SELECT 'k', 'scheduled', now() + interval '1 day'
            FROM generate_series(1, {PARENTS + 2 * IN_FLIGHT});
            {waiting_parents_sql(schema, parents=PARENTS, in_flight=IN_FLIGHT)};
            """
        )
        await db.execute(f'VACUUM ANALYZE "{schema}".jobs')
        await db.execute(f'VACUUM ANALYZE "{schema}".job_deps')
        await db.execute(f'ANALYZE "{schema}".jobs_history')

    yield from built_schema(dsn, "plans_history", fill)


@pytest.fixture
async def hq(dsn: str, history_schema: str) -> AsyncIterator[aioqueue.Queue]:
    async with queue_on(dsn, history_schema) as q:
        yield q


def _history_scans(nodes: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [n for n in nodes if str(n.get("Relation Name", "")).startswith("jobs_history_")]


# A partition this small may be read whole (a few pages: the planner's choice, and cheap); a
# full one (ROWS / HOURS rows) never.
SMALL = 1000


def _assert_probed_by_id(scans: list[dict[str, Any]], *, found: int) -> None:
    read = [(n["Node Type"], n["Relation Name"], rows_read_by(n)) for n in scans if rows_read_by(n)]
    assert sum(int(n["Actual Rows"]) for n in scans) == found, read
    assert all(rows <= SMALL for _, _, rows in read), read
    assert sum(rows for _, _, rows in read) <= found + SMALL, read


async def test_history_is_partitioned_as_the_guards_assume(
    hq: aioqueue.Queue, conn: asyncpg.Connection
) -> None:
    s = hq.config.schema
    leaves = await conn.fetchval(
        f"SELECT count(*) FROM \"{s}\".jobs_history_partitions WHERE state = 'completed'"
    )
    assert leaves >= HOURS


@pytest.mark.parametrize("plan", ["custom", "generic"])
async def test_get_job_probes_each_history_partition_by_id(
    hq: aioqueue.Queue, conn: asyncpg.Connection, plan: str
) -> None:
    job_id = ROWS // 2  # in a middle partition
    tr = conn.transaction()
    await tr.start()
    try:
        nodes = await explain_prepared(
            conn, hq.queries.text("job_get"), plan, ["bigint"], (job_id,)
        )
    finally:
        await tr.rollback()
    assert_no_seq_scan_on_jobs(nodes)
    scans = _history_scans(nodes)
    assert len(scans) >= HOURS  # every leaf is probed (an id says nothing of finished_at) ...
    _assert_probed_by_id(scans, found=1)  # ... through its id index


async def test_wait_reads_states_by_id_in_history(
    hq: aioqueue.Queue, conn: asyncpg.Connection
) -> None:
    nodes = await explain(conn, hq.queries.text("job_get_many"), [7, ROWS - 7])
    assert_no_seq_scan_on_jobs(nodes)
    _assert_probed_by_id(_history_scans(nodes), found=2)


async def test_one_move_batch_reads_one_batch_of_the_oldest_finished(
    hq: aioqueue.Queue, conn: asyncpg.Connection
) -> None:
    """The oldest 5,000 finished jobs wait for their children: the batch reads past them (one
    probe of job_deps each, never the 100,000 edges of workflows in flight)."""
    nodes = await explain(conn, hq.queries.text("job_history_move"), "completed", 1000, 0.0, None)
    assert_reads_past_waiting_parents(nodes, parents=PARENTS)
    (delete,) = [
        n for n in nodes if n["Node Type"] == "ModifyTable" and n.get("Relation Name") == "jobs"
    ]
    assert int(delete["Actual Rows"]) == 1000
    (insert,) = [
        n
        for n in nodes
        if n["Node Type"] == "ModifyTable" and n.get("Relation Name") == "jobs_history"
    ]
    assert int(insert["Actual Rows"]) == 1000
