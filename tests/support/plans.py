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
