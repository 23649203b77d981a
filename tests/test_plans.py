"""Plan guards (EXPLAIN, not timings): hot-path statements stay O(batch) on a big table.

The table holds 100k completed and 100k future (scheduled) rows plus a small due backlog;
a statement that seq-scans or walks the finished/future rows fails here.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import asyncpg
import pytest

import aioqueue
from aioqueue._consumer.outcome import Outcome

BATCH = 50


@pytest.fixture
async def big(q: aioqueue.Queue, conn: asyncpg.Connection) -> AsyncIterator[aioqueue.Queue]:
    s = q.config.schema
    await conn.execute(
        f"""
        INSERT INTO "{s}".jobs (kind, payload, state, run_at, attempts, max_attempts, finished_at)
        SELECT 'k', '{{}}', 'completed', now() - interval '1 day', 1, 25, now() - interval '1 h'
        FROM generate_series(1, 100000);
        INSERT INTO "{s}".jobs (kind, payload, state, run_at)
        SELECT 'k', '{{}}', 'scheduled', now() + interval '1 day' + g * interval '1 ms'
        FROM generate_series(1, 100000) AS g;
        INSERT INTO "{s}".jobs (kind, payload, state, run_at)
        SELECT 'k', '{{}}', 'pending', now() - interval '1 minute'
        FROM generate_series(1, 500);
        ANALYZE "{s}".jobs;
        """
    )
    return q


def _nodes(plan: dict[str, Any]) -> list[dict[str, Any]]:
    out = [plan]
    for child in plan.get("Plans", []):
        out.extend(_nodes(child))
    return out


async def _explain(conn: asyncpg.Connection, sql: str, *args: Any) -> list[dict[str, Any]]:
    """EXPLAIN ANALYZE inside a rolled-back transaction; returns every plan node."""
    tr = conn.transaction()
    await tr.start()
    try:
        raw = await conn.fetchval("EXPLAIN (ANALYZE, FORMAT JSON) " + sql, *args)
    finally:
        await tr.rollback()
    return _nodes(json.loads(raw)[0]["Plan"])


def _assert_no_seq_scan_on_jobs(nodes: list[dict[str, Any]]) -> None:
    scans = [n for n in nodes if n["Node Type"] == "Seq Scan" and n.get("Relation Name") == "jobs"]
    assert not scans, scans


def _rows_read(nodes: list[dict[str, Any]], index: str) -> int:
    found = [n for n in nodes if n.get("Index Name") == index]
    assert found, f"{index} not used: {[n['Node Type'] for n in nodes]}"
    return sum(
        int(n["Actual Rows"]) * int(n.get("Actual Loops", 1))
        + int(n.get("Rows Removed by Filter", 0))
        for n in found
    )


async def test_claim_uses_partial_index_and_reads_one_batch(
    big: aioqueue.Queue, conn: asyncpg.Connection
) -> None:
    sql = big.queries.sql["job_claim"]
    nodes = await _explain(conn, sql, ["k"], [25], [], BATCH, "w", 30.0, None)
    _assert_no_seq_scan_on_jobs(nodes)
    assert _rows_read(nodes, "jobs_claim") <= 2 * BATCH


async def test_backlog_of_an_unregistered_kind_is_skipped_inside_the_index(
    q: aioqueue.Queue, conn: asyncpg.Connection
) -> None:
    """E10: 100k due jobs of a kind no worker handles sit ahead of the worker's jobs. The claim
    filters them out by the index's kind column: no heap fetch (Rows Removed by Filter) each."""
    s = q.config.schema
    await conn.execute(
        f"""
        INSERT INTO "{s}".jobs (kind, payload, state, run_at)
        SELECT 'ghost', '{{}}', 'pending', now() - interval '1 hour'
        FROM generate_series(1, 100000);
        INSERT INTO "{s}".jobs (kind, payload, state, run_at)
        SELECT 'k', '{{}}', 'pending', now() FROM generate_series(1, 500);
        ANALYZE "{s}".jobs;
        """
    )
    nodes = await _explain(
        conn, q.queries.sql["job_claim"], ["k"], [25], [], BATCH, "w", 30.0, None
    )
    _assert_no_seq_scan_on_jobs(nodes)
    (scan,) = [n for n in nodes if n.get("Index Name") == "jobs_claim"]
    assert "kind" in scan["Index Cond"], scan
    assert int(scan.get("Rows Removed by Filter", 0)) <= 2 * BATCH
    assert int(scan["Actual Rows"]) == BATCH


async def test_heartbeat_finish_and_rescue_are_o_batch(
    big: aioqueue.Queue, conn: asyncpg.Connection
) -> None:
    q = big
    rows = await q.queries.job_claim(
        conn,
        kinds=["k"],
        default_max_attempts=[25],
        forbidden_flags=[],
        batch=BATCH,
        worker_id="w",
        lease=30.0,
    )
    ids = [r["id"] for r in rows]
    tokens = [r["lease_token"] for r in rows]
    await conn.execute(f'ANALYZE "{q.config.schema}".jobs')

    nodes = await _explain(conn, q.queries.sql["job_heartbeat_many"], ids, tokens, 30.0, None)
    _assert_no_seq_scan_on_jobs(nodes)

    outcomes = [
        Outcome(id=i, lease_token=t, kind="k", attempt=1, state="completed", result="1")
        for i, t in zip(ids, tokens, strict=True)
    ]
    sql = q.queries.sql["job_finish_many"]
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
    nodes = await _explain(conn, sql, *args)
    _assert_no_seq_scan_on_jobs(nodes)

    nodes = await _explain(conn, q.queries.sql["job_rescue_expired"], 1000, None)
    _assert_no_seq_scan_on_jobs(nodes)
    assert _rows_read(nodes, "jobs_running") <= 2 * BATCH
    assert all(isinstance(t, int) for t in tokens)
