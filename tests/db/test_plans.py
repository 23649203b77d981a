"""Plan guards (EXPLAIN, not timings): hot-path statements stay O(batch) on a big table.

The table holds a million completed and a million future (scheduled) rows plus a small due
backlog, built once for the module; every statement runs in a rolled-back transaction. A
statement that seq-scans or walks the finished/future rows fails here.
"""

from __future__ import annotations

import json
import re
from collections.abc import AsyncIterator, Iterator
from typing import Any

import asyncpg
import pytest

import aioqueue
from aioqueue._consumer.outcome import Outcome
from tests.support.plan_schemas import built_schema, queue_on
from tests.support.plans import (
    BATCH,
    assert_no_seq_scan_on_jobs,
    assert_reads_past_waiting_parents,
    explain,
    explain_prepared,
    rows_read,
    rows_read_by,
    waiting_parents_sql,
)

MILLION = 1_000_000
PARENTS = 5_000  # the oldest completed jobs, each with a scheduled child
IN_FLIGHT = 200_000  # edges between scheduled jobs


@pytest.fixture(scope="module")
def big_schema(dsn: str) -> Iterator[str]:
    """A schema with the million-row table, made once (its own event loop: module scope)."""

    async def fill(q: aioqueue.Queue, schema: str) -> None:
        await q.pool.execute(
            f"""
            INSERT INTO "{schema}".jobs
                (kind, payload, state, run_at, attempts, max_attempts, finished_at)
            SELECT 'k', '{{}}', 'completed', now() - interval '1 day', 1, 25,
                   now() - interval '1 h' + g * interval '1 ms'
            FROM generate_series(1, {MILLION}) AS g;
            INSERT INTO "{schema}".jobs (kind, payload, state, run_at)
            SELECT 'k', '{{}}', 'scheduled', now() + interval '1 day' + g * interval '1 ms'
            FROM generate_series(1, {MILLION}) AS g;
            INSERT INTO "{schema}".jobs (kind, payload, state, run_at)
            SELECT 'k', '{{}}', 'pending', now() - interval '1 minute'
            FROM generate_series(1, 500);
            {waiting_parents_sql(schema, parents=PARENTS, in_flight=IN_FLIGHT)};
            INSERT INTO "{schema}".job_groups (total, sealed, finished_at)
            SELECT 1, g % 2 = 0, CASE WHEN g % 2 = 0 THEN now() - interval '2 day' END
            FROM generate_series(1, {MILLION // 5}) AS g;
            """
        )
        for table in ("jobs", "job_deps", "job_groups"):  # no transaction block
            await q.pool.execute(f'VACUUM ANALYZE "{schema}".{table}')

    yield from built_schema(dsn, "plans", fill)


@pytest.fixture
async def big(dsn: str, big_schema: str) -> AsyncIterator[aioqueue.Queue]:
    async with queue_on(dsn, big_schema) as q:
        yield q


async def _claim(q: aioqueue.Queue, conn: Any, kinds: list[str], batch: int) -> list[Any]:
    return await q.queries.job_claim(
        conn,
        kinds=kinds,
        default_max_attempts=[25] * len(kinds),
        forbidden_flags=[],
        batch=batch,
        worker_id="w",
        lease=30.0,
    )


async def test_claim_uses_partial_index_and_reads_one_batch(
    big: aioqueue.Queue, conn: asyncpg.Connection
) -> None:
    sql = big.queries.text("job_claim")
    nodes = await explain(conn, sql, ["k"], [25], [], BATCH, "w", 30.0, None)
    assert_no_seq_scan_on_jobs(nodes)
    assert rows_read(nodes, "jobs_claim") <= 2 * BATCH


async def test_backlog_of_an_unregistered_kind_is_never_read(
    q: aioqueue.Queue, conn: asyncpg.Connection
) -> None:
    """E10: 100k due jobs of a kind no worker handles sit ahead of the worker's jobs. Each of
    the worker's kinds is one range of the kind-led claim index, so none of them is read; with
    several kinds the unlocked peek reads at most a batch per kind."""
    s = q.config.schema
    await conn.execute(
        f"""
        INSERT INTO "{s}".jobs (kind, payload, state, run_at)
        SELECT 'ghost', '{{}}', 'pending', now() - interval '1 hour'
        FROM generate_series(1, 100000);
        INSERT INTO "{s}".jobs (kind, payload, state, run_at)
        SELECT 'k', '{{}}', 'pending', now() FROM generate_series(1, 500);
        INSERT INTO "{s}".jobs (kind, payload, state, run_at)
        SELECT 'other', '{{}}', 'pending', now() FROM generate_series(1, 500);
        ANALYZE "{s}".jobs;
        """
    )
    for kinds in (["k"], ["k", "other", "x"]):
        nodes = await explain(
            conn, q.queries.text("job_claim"), kinds, [25] * len(kinds), [], BATCH, "w", 30, None
        )
        assert_no_seq_scan_on_jobs(nodes)
        scans = [n for n in nodes if n.get("Index Name") == "jobs_claim"]
        # kind is a domain over text (migration 0006): "(kind)::text = ..."
        assert all(re.search(r"\bkind\)?(::text)? = ", n["Index Cond"]) for n in scans), scans
        peeks = len(kinds) if len(kinds) > 1 else 0  # a lone kind locks without a peek
        assert rows_read(nodes, "jobs_claim") <= BATCH * (1 + peeks)
        (update,) = [n for n in nodes if n["Node Type"] == "ModifyTable"]
        assert int(update["Actual Rows"]) == BATCH


async def test_a_claim_over_several_kinds_takes_the_first_jobs_of_all_of_them(
    q: aioqueue.Queue, conn: asyncpg.Connection
) -> None:
    """The batch is split between kinds by one order over all of them (priority, run_at, id),
    and comes back in that order: the worker starts jobs, and queues those claimed ahead, so."""
    s = q.config.schema
    await conn.execute(
        f"""
        INSERT INTO "{s}".jobs (kind, payload, state, run_at, priority)
        SELECT CASE WHEN g % 3 = 0 THEN 'a' WHEN g % 3 = 1 THEN 'b' ELSE 'c' END, '{{}}',
               'pending', now() - g * interval '1 s', CASE WHEN g <= 30 THEN 5 ELSE 0 END
        FROM generate_series(1, 300) AS g;
        """
    )
    expected = await conn.fetch(
        f"""SELECT id FROM "{s}".jobs WHERE kind IN ('a', 'b')
            ORDER BY priority DESC, run_at, id LIMIT 40"""
    )
    rows = await _claim(q, conn, ["a", "b"], 40)
    assert [r["id"] for r in rows] == [r["id"] for r in expected]  # returned in that order
    assert {r["kind"] for r in rows} == {"a", "b"}


async def test_heartbeat_finish_and_rescue_are_o_batch(
    big: aioqueue.Queue, conn: asyncpg.Connection
) -> None:
    q = big
    tr = conn.transaction()  # the table is shared by the module: leave it as it was
    await tr.start()
    try:
        await _heartbeat_finish_and_rescue(q, conn)
    finally:
        await tr.rollback()


async def _heartbeat_finish_and_rescue(q: aioqueue.Queue, conn: asyncpg.Connection) -> None:
    rows = await _claim(q, conn, ["k"], BATCH)
    ids = [r["id"] for r in rows]
    tokens = [r["lease_token"] for r in rows]
    await conn.execute(f'ANALYZE "{q.config.schema}".jobs')  # rolled back with the rest

    nodes = await explain(conn, q.queries.text("job_heartbeat_many"), ids, tokens, 30.0, None)
    assert_no_seq_scan_on_jobs(nodes)

    outcomes = [
        Outcome(id=i, lease_token=t, kind="k", attempt=1, state="completed", result="1")
        for i, t in zip(ids, tokens, strict=True)
    ]
    sql = q.queries.text("job_finish_many")
    args = [
        [o.id for o in outcomes],
        [o.lease_token for o in outcomes],
        [o.state for o in outcomes],
        [o.result for o in outcomes],
        [None] * BATCH,
        [None] * BATCH,
        [None] * BATCH,
        [False] * BATCH,
        None,
    ]
    nodes = await explain(conn, sql, *args)
    assert_no_seq_scan_on_jobs(nodes)

    nodes = await explain(
        conn,
        q.queries.text("job_complete_many"),
        "{" + ",".join(map(str, ids)) + "}",
        json.dumps({str(i): [t, 1] for i, t in zip(ids, tokens, strict=True)}),
        None,
    )
    assert_no_seq_scan_on_jobs(nodes)
    (update,) = [n for n in nodes if n["Node Type"] == "ModifyTable"]
    assert int(update["Actual Rows"]) == BATCH

    nodes = await explain(conn, q.queries.text("job_rescue_expired"), 1000, None, 25)
    assert_no_seq_scan_on_jobs(nodes)
    assert rows_read(nodes, "jobs_running") <= 2 * BATCH
    assert all(isinstance(t, int) for t in tokens)


async def test_a_completion_reads_its_batch_among_many_running_jobs(
    big: aioqueue.Queue, conn: asyncpg.Connection
) -> None:
    """Every other worker's running jobs stay unread: a completion reads its batch by id,
    whatever the statistics say (here they say nothing runs, as after an ANALYZE of a fresh
    backlog), with its custom plan and its generic one. Joined to the unnested arrays, the
    planner hashed every running job for each batch, or rescanned the arrays once per job."""
    q = big
    tr = conn.transaction()
    await tr.start()
    try:
        rows: list[Any] = []
        while batch := await _claim(q, conn, ["k"], BATCH):  # all 500 due rows: 10 batches
            rows.extend(batch)
        assert len(rows) >= 10 * BATCH
        mine = rows[:BATCH]
        by_id = {str(r["id"]): [r["lease_token"], {"n": r["id"]}] for r in mine}
        by_id[str(mine[0]["id"])][0] += 1  # a lease lost: rejected
        args = ("{" + ",".join(str(r["id"]) for r in mine) + "}", json.dumps(by_id), None)
        for plan in ("custom", "generic"):
            nodes = await explain_prepared(
                conn,
                q.queries.text("job_complete_many"),
                plan,
                ["text", "text", "timestamptz"],
                args,
            )
            assert_no_seq_scan_on_jobs(nodes)
            read = sum(
                rows_read_by(n)
                for n in nodes
                if n.get("Relation Name") == "jobs" and n["Node Type"] != "ModifyTable"
            )
            assert read <= BATCH, (plan, read)
            (update,) = [n for n in nodes if n["Node Type"] == "ModifyTable"]
            assert int(update["Actual Rows"]) == BATCH - 1, plan
            # no join to rescan or hash: the update reads the jobs straight from one index scan
            (source,) = [c for c in update["Plans"] if c.get("Parent Relationship") == "Outer"]
            assert source["Node Type"] in ("Index Scan", "Bitmap Heap Scan"), (plan, source)
        done = await q.queries.job_complete_many(
            conn,
            outcomes=[
                Outcome(
                    id=r["id"],
                    lease_token=r["lease_token"],
                    kind="k",
                    attempt=1,
                    state="completed",
                    result=json.dumps({"n": r["id"]}),
                )
                for r in mine
            ],
        )
        assert sorted(d["id"] for d in done) == sorted(r["id"] for r in mine)
        results = await conn.fetch(
            f'SELECT id, result, state::text FROM "{q.config.schema}".jobs WHERE id = ANY($1)',
            [r["id"] for r in mine],
        )
        assert all(
            x["state"] == "completed" and json.loads(x["result"]) == {"n": x["id"]} for x in results
        )
    finally:
        await tr.rollback()


async def test_prune_reads_one_batch_of_the_oldest_finished(
    big: aioqueue.Queue, conn: asyncpg.Connection
) -> None:
    """A million completed rows past retention, the oldest 5,000 of them parents of waiting
    children: one prune batch reads past those parents (one probe of job_deps each, never the
    200,000 edges of workflows in flight) and then that batch, in the finished_at order of the
    partial index jobs_finished."""
    nodes = await explain(conn, big.queries.text("job_prune"), "completed", 60.0, 1000, None)
    assert_reads_past_waiting_parents(nodes, parents=PARENTS)
    # the jobs' DELETE (the other one deletes their dependency edges, migration 0009)
    (delete,) = [
        n for n in nodes if n["Node Type"] == "ModifyTable" and n.get("Relation Name") == "jobs"
    ]
    assert int(delete["Actual Rows"]) == 1000


async def test_group_prune_reads_one_batch_of_the_oldest_finished(
    big: aioqueue.Queue, conn: asyncpg.Connection
) -> None:
    """100,000 finished groups past retention beside 100,000 open ones: one prune batch reads
    that batch through the partial index job_groups_finished."""
    nodes = await explain(conn, big.queries.text("group_prune"), 86400.0, 1000, None)
    assert not [n for n in nodes if n["Node Type"] == "Seq Scan"]
    assert rows_read(nodes, "job_groups_finished") <= 2 * 1000
    assert rows_read(nodes, "job_groups_pkey") <= 1000  # the DELETE finds its batch by id
    (delete,) = [n for n in nodes if n["Node Type"] == "ModifyTable"]
    assert int(delete["Actual Rows"]) == 1000


async def test_the_claim_connection_plans_the_claim_once(q: aioqueue.Queue) -> None:
    """Left to the plan cache, every claim got a custom plan (about 1 ms of planning each):
    the worker's claim session forces the generic plan, whose shape the tests above guard."""
    from aioqueue._db.connect import Dedicated
    from aioqueue.worker import CLAIM_SESSION

    db = Dedicated(None, q.pool, application_name="t", settings=CLAIM_SESSION)
    try:
        conn = await db.get()
        for _ in range(8):
            await _claim(q, conn, ["k"], BATCH)
        generic, custom = await conn.fetchrow(
            """SELECT generic_plans, custom_plans FROM pg_prepared_statements
            WHERE statement LIKE '-- job_claim:%'"""
        )
        assert (generic, custom) == (8, 0)
    finally:
        await db.close()
