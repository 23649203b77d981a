"""Plan guards for the flow-control claim (issue 20): with limits on and a backlog of
300,000 due jobs (enough for a scan to show; a million only made the setup slower), every
statement claim_gated runs reads O(batch) rows and none scans the table.

claim_gated is a plpgsql function, so its statements are caught with auto_explain (nested
statements, sent to the client as NOTICEs), in a rolled-back transaction."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Iterator
from typing import Any

import asyncpg
import pytest

import aioqueue
from tests.support.plan_schemas import built_schema, queue_on
from tests.support.plans import BATCH, plan_nodes, rows_read_by

BACKLOG = 300_000
KEYS = 1000
KEYRATED = 50_000  # jobs of a kind with a rate per key (key_rate_limit)
STALE_BUCKETS = 20_000


@pytest.fixture(scope="module")
def flow_schema(dsn: str) -> Iterator[str]:

    async def fill(q: aioqueue.Queue, schema: str) -> None:
        await q.pool.execute(
            f"""
            INSERT INTO "{schema}".jobs (kind, payload, state, run_at, concurrency_key)
            SELECT 'keyed', '{{}}', 'pending', now() - interval '1 minute',
                   'tenant:' || (g % {KEYS})
            FROM generate_series(1, {BACKLOG // 2}) AS g;
            INSERT INTO "{schema}".jobs (kind, payload, state, run_at)
            SELECT 'capped', '{{}}', 'pending', now() - interval '1 minute'
            FROM generate_series(1, {BACKLOG // 2}) AS g;
            INSERT INTO "{schema}".jobs (kind, payload, state, run_at)
            SELECT 'free', '{{}}', 'pending', now() - interval '1 minute'
            FROM generate_series(1, 500) AS g;
            INSERT INTO "{schema}".jobs (kind, payload, state, run_at, concurrency_key)
            SELECT 'keyrated', '{{}}', 'pending', now() - interval '1 minute',
                   'tenant:' || (g % {KEYS})
            FROM generate_series(1, {KEYRATED}) AS g;
            """
        )
        await q.set_limits("keyed", concurrency=100_000, key_concurrency=2)
        await q.set_limits("capped", concurrency=100_000, rate_limit=(1_000_000, 1))
        await q.set_limits("keyrated", key_rate_limit=(2, 3600))
        # buckets: every other key has no token left; many stale rows (full again) of keys
        # with no jobs, which a claim prunes a bounded number of
        await q.pool.execute(
            f"""
            INSERT INTO "{schema}".flow_key_rates (kind, concurrency_key, tokens, tokens_at)
            SELECT 'keyrated', 'tenant:' || g, 0, now()
            FROM generate_series(0, {KEYS - 1}, 2) AS g;
            INSERT INTO "{schema}".flow_key_rates (kind, concurrency_key, tokens, tokens_at)
            SELECT 'keyrated', 'gone:' || g, 0, now() - interval '2 hours'
            FROM generate_series(1, {STALE_BUCKETS}) AS g;
            ANALYZE "{schema}".flow_key_rates;
            """
        )
        await q.pool.execute(f'VACUUM ANALYZE "{schema}".jobs')

    yield from built_schema(dsn, "plansflow", fill)


@pytest.fixture
async def fq(dsn: str, flow_schema: str) -> AsyncIterator[aioqueue.Queue]:
    async with queue_on(dsn, flow_schema) as q:
        yield q


async def _nested_plans(
    conn: asyncpg.Connection, sql: str, mode: str, *args: Any
) -> list[dict[str, Any]]:
    """Run ``sql`` (rolled back) with auto_explain reporting every nested statement's plan."""
    notices: list[str] = []

    def listen(_conn: Any, msg: Any) -> None:
        notices.append(msg.message)

    conn.add_log_listener(listen)
    tr = conn.transaction()
    await tr.start()
    try:
        await conn.execute("LOAD 'auto_explain'")
        for setting, value in (
            ("auto_explain.log_min_duration", "0"),
            ("auto_explain.log_nested_statements", "on"),
            ("auto_explain.log_analyze", "on"),
            ("auto_explain.log_format", "json"),
            ("auto_explain.log_level", "notice"),
            ("client_min_messages", "notice"),
            ("plan_cache_mode", mode),
        ):
            await conn.execute("SELECT set_config($1, $2, true)", setting, value)
        rows = await conn.fetch(sql, *args)
    finally:
        await tr.rollback()
        conn.remove_log_listener(listen)
    assert rows, "nothing claimed"
    plans = [json.loads(m[m.index("{") :]) for m in notices if "{" in m]
    assert plans, notices
    return plans


async def test_claim_gated_reads_o_batch_with_a_big_backlog(
    fq: aioqueue.Queue, conn: asyncpg.Connection
) -> None:
    """Both plan modes: workers' claim sessions force generic plans (worker.py)."""
    for mode in ("auto", "force_generic_plan"):
        for gated in ("keyed", "capped", "keyrated"):
            await _guard_claim(fq, conn, gated, mode)


async def _guard_claim(fq: aioqueue.Queue, conn: asyncpg.Connection, kind: str, mode: str) -> None:
    plans = await _nested_plans(
        conn, fq.queries.text("claim_gated"), mode, [kind], [25], [], BATCH, "w", 30.0, None
    )
    total = 0
    buckets = 0
    for plan in plans:
        nodes = plan_nodes(plan["Plan"])
        text = plan.get("Query Text", "")
        seq = [
            n for n in nodes if n["Node Type"] == "Seq Scan" and n.get("Relation Name") == "jobs"
        ]
        assert not seq, text
        assert "JIT" not in plan, text  # SET jit = off on the function (issue 18)
        for n in nodes:
            if n.get("Relation Name") == "flow_key_rates":  # the key buckets: O(batch) too
                assert n["Node Type"] != "Seq Scan", text
                assert rows_read_by(n) <= 4 * BATCH + 64, (text, n)
                buckets += 1
            if n.get("Relation Name") == "jobs" and "Scan" in n["Node Type"]:
                assert rows_read_by(n) <= 4 * BATCH + 64, (text, n)
                total += rows_read_by(n)
    # the whole claim: one batch plus the key rotation's probes, never the backlog
    assert total <= 20 * BATCH, total
    assert (buckets > 0) == (kind == "keyrated"), buckets  # the buckets' statements were seen


async def test_the_ordinary_claim_never_reads_a_gated_backlog(
    fq: aioqueue.Queue, conn: asyncpg.Connection
) -> None:
    """The worker's ordinary claim with gated and free kinds reads only the free kind."""
    tr = conn.transaction()
    await tr.start()
    try:
        raw = await conn.fetchval(
            "EXPLAIN (ANALYZE, FORMAT JSON) " + fq.queries.text("job_claim"),
            ["capped", "free", "keyed"],
            [25, 25, 25],
            [],
            BATCH,
            "w",
            30.0,
            None,
        )
    finally:
        await tr.rollback()
    nodes = plan_nodes(json.loads(raw)[0]["Plan"])
    read = sum(rows_read_by(n) for n in nodes if n.get("Index Name") == "jobs_claim")
    assert read <= 2 * BATCH, read
    claimed = json.loads(raw)[0]["Plan"]
    assert claimed["Actual Rows"] == BATCH  # all from 'free'
