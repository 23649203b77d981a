"""EXPLAIN helpers of the plan guards: run a statement under EXPLAIN ANALYZE (or a prepared one
with its custom or generic plan) in a rolled-back transaction, and read the plan's nodes."""

from __future__ import annotations

import json
from typing import Any

import asyncpg

BATCH = 50


def plan_nodes(plan: dict[str, Any]) -> list[dict[str, Any]]:
    out = [plan]
    for child in plan.get("Plans", []):
        out.extend(plan_nodes(child))
    return out


async def explain(conn: asyncpg.Connection, sql: str, *args: Any) -> list[dict[str, Any]]:
    """EXPLAIN ANALYZE inside a rolled-back transaction; returns every plan node."""
    tr = conn.transaction()
    await tr.start()
    try:
        raw = await conn.fetchval("EXPLAIN (ANALYZE, FORMAT JSON) " + sql, *args)
    finally:
        await tr.rollback()
    return plan_nodes(json.loads(raw)[0]["Plan"])


async def explain_prepared(
    conn: asyncpg.Connection, sql: str, plan: str, types: list[str], args: tuple[Any, ...]
) -> list[dict[str, Any]]:
    """``explain`` of a prepared statement run with its custom or its generic plan (a pooled
    connection switches to the generic one after five runs if that looks no dearer). Call it
    inside a transaction: the plan mode is SET LOCAL there. The server quotes the arguments."""
    await conn.execute(f"SET LOCAL plan_cache_mode = force_{plan}_plan")
    await conn.execute(f"PREPARE guarded({', '.join(types)}) AS {sql}")
    try:
        placeholders = ", ".join(f"${i + 2}::{t}" for i, t in enumerate(types))
        call = await conn.fetchval(
            f"SELECT format($1, {placeholders})",
            "EXECUTE guarded(" + ", ".join(["%L"] * len(types)) + ")",
            *args,
        )
        return await explain(conn, call)  # rolled back: each plan writes the same rows
    finally:
        await conn.execute("DEALLOCATE guarded")  # a PREPARE outlives its transaction


def assert_no_seq_scan_on_jobs(nodes: list[dict[str, Any]]) -> None:
    scans = [n for n in nodes if n["Node Type"] == "Seq Scan" and n.get("Relation Name") == "jobs"]
    assert not scans, scans


def rows_read_by(node: dict[str, Any]) -> int:
    """Rows a scan node read: those it returned over all its loops plus those it filtered out."""
    return int(node["Actual Rows"]) * int(node.get("Actual Loops", 1)) + int(
        node.get("Rows Removed by Filter", 0)
    )


def rows_read(nodes: list[dict[str, Any]], index: str) -> int:
    found = [n for n in nodes if n.get("Index Name") == index]
    assert found, f"{index} not used: {[n['Node Type'] for n in nodes]}"
    return sum(rows_read_by(n) for n in found)


def waiting_parents_sql(schema: str, *, parents: int, in_flight: int) -> str:
    """SQL that makes the oldest ``parents`` completed jobs parents of scheduled children (a
    parent stays in jobs while they wait) and joins ``in_flight`` more pairs of scheduled jobs
    (workflows in flight): the schema needs ``parents + 2 * in_flight`` scheduled jobs."""
    return f"""
        WITH parents AS (
            SELECT id, row_number() OVER (ORDER BY finished_at) AS n FROM "{schema}".jobs
            WHERE state = 'completed' ORDER BY finished_at LIMIT {parents}
        ), scheduled AS (
            SELECT id, row_number() OVER (ORDER BY id) AS n FROM "{schema}".jobs
            WHERE state = 'scheduled' ORDER BY id LIMIT {parents + 2 * in_flight}
        ), edges AS (
            INSERT INTO "{schema}".job_deps (parent_id, child_id)
            SELECT p.id, c.id FROM parents AS p JOIN scheduled AS c USING (n)
            UNION ALL
            SELECT a.id, b.id FROM scheduled AS a JOIN scheduled AS b
                ON b.n = a.n + {in_flight} AND a.n > {parents} AND a.n <= {parents + in_flight}
            RETURNING parent_id
        )
        UPDATE "{schema}".jobs AS j SET has_children = true
        FROM (SELECT DISTINCT parent_id FROM edges) AS e WHERE j.id = e.parent_id
    """


def assert_reads_past_waiting_parents(nodes: list[dict[str, Any]], *, parents: int) -> None:
    """A batch of 1,000 of the oldest finished jobs, read through jobs_finished past
    ``parents`` waiting parents with one probe of job_deps each (never all the edges)."""
    assert_no_seq_scan_on_jobs(nodes)
    assert not [
        n for n in nodes if n.get("Relation Name") == "job_deps" and n["Node Type"] == "Seq Scan"
    ]
    assert rows_read(nodes, "jobs_finished") <= parents + 2 * 1000
    assert rows_read(nodes, "job_deps_pkey") <= 2 * parents
