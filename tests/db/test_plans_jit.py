"""Plan guard: no hot statement is JIT-compiled, on a server with JIT (Debian's PostgreSQL 15
in CI; the embedded server ships no llvmjit), over a big backlog with stale statistics.

JIT is decided at planning: a plan whose estimated cost passes jit_above_cost is compiled on
every run (~30 ms for the claim, which does < 1 ms of work). EXPLAIN shows a "JIT" section
for such a plan, without running it. Every statement is explained with its custom plan and
with its generic one (what the plan cache keeps after five runs, or always under a DBA's
plan_cache_mode=force_generic_plan).
"""

from __future__ import annotations

import asyncio
import json
import secrets
from collections.abc import AsyncIterator, Iterator
from typing import Any

import asyncpg
import pytest

import aioqueue
from aioqueue._db.connect import Dedicated
from aioqueue.worker import CLAIM_SESSION, CLAIM_TRANSACTION
from tests.conftest import skip_unless_required

N = 100_000  # rows per state: the claim's generic plan is costed over jit_above_cost
BATCH = 50
IDS = list(range(1, BATCH + 1))
NONES: list[Any] = [None] * BATCH
NOS = [False] * BATCH

CLAIM = ("job_claim", ["text[]", "integer[]", "text[]", "integer", "text", "float8", "timestamptz"])
CLAIM_ARGS = (["k"], [25], [], BATCH, "w", 30.0, None)
CLAIM_KINDS_ARGS = (["k", "other"], [25, 25], [], BATCH, "w", 30.0, None)

# every hot statement but the claim: (statement, parameter types, arguments)
HOT: list[tuple[str, list[str], tuple[Any, ...]]] = [
    (
        "job_heartbeat_many",
        ["bigint[]", "bigint[]", "float8", "timestamptz"],
        (IDS, IDS, 30.0, None),
    ),
    (
        "job_complete_many",
        ["text", "text", "timestamptz"],
        (
            "{" + ",".join(map(str, IDS)) + "}",
            json.dumps({str(i): [i, {"ok": True}] for i in IDS}),
            None,
        ),
    ),
    (
        "job_finish_many",
        [
            *("bigint[]", "bigint[]", "text[]", "text[]", "text[]", "text[]", "float8[]"),
            *("boolean[]", "timestamptz"),
        ],
        (IDS, IDS, ["failed"] * BATCH, NONES, ['{"m": 1}'] * BATCH, NONES, NONES, NOS, None),
    ),
    ("job_rescue_expired", ["integer", "timestamptz", "integer"], (1000, None, 25)),
    ("job_prune", ["text", "float8", "integer", "timestamptz"], ("completed", 60.0, 1000, None)),
    ("job_insert_now", ["text", "text", "boolean"], ("k", "{}", False)),
    (
        "jobs_insert_many",
        ["text", "timestamptz", "boolean"],
        (json.dumps([{"kind": "k", "payload": {}, "priority": 1}] * 1000), None, True),
    ),
    ("jobs_insert_bare", ["text"], (json.dumps([{"kind": "k", "payload": {}}] * 1000),)),
    (
        "jobs_add",
        ["text", "timestamptz"],
        (json.dumps([{"kind": "k", "payload": {}, "unique_key": f"u{i}"} for i in IDS]), None),
    ),
    ("job_watch", ["bigint"], (5,)),  # Queue.wait
    ("job_get_many", ["bigint[]"], ([5],)),  # Queue.wait
    ("job_get", ["bigint"], (5,)),
]


@pytest.fixture(scope="module")
def backlog(dsn: str) -> Iterator[str]:
    """N due, N running (leases expired), N long completed jobs, analyzed; then N more due
    jobs the statistics do not know of (autovacuum off for the table: they stay stale)."""
    schema = f"jit_{secrets.token_hex(4)}"

    async def build() -> None:
        conn = await asyncpg.connect(dsn)
        try:
            if not await conn.fetchval("SELECT pg_jit_available()"):
                skip_unless_required(
                    "jit",
                    "the server has no JIT (the embedded PostgreSQL ships no llvmjit): "
                    "this guard runs on the PostgreSQL 15 pass (AIOQUEUE_TEST_DSN)",
                )
            q = await aioqueue.Queue.connect(dsn, schema=schema)
            await q.close()
            jobs = f'"{schema}".jobs'
            await conn.execute(
                f"""
                ALTER TABLE {jobs} SET (autovacuum_enabled = false);
                INSERT INTO {jobs} (kind, payload, state, run_at)
                SELECT 'k', '{{}}', 'pending', now() - interval '1 minute'
                FROM generate_series(1, {N});
                INSERT INTO {jobs} (kind, payload, state, run_at, attempts, lease_token,
                                    locked_by, lease_expires_at, started_at)
                SELECT 'k', '{{}}', 'running', now(), 1, g, 'w', now() - interval '1 s', now()
                FROM generate_series(1, {N}) AS g;
                INSERT INTO {jobs} (kind, payload, state, run_at, attempts, finished_at)
                SELECT 'k', '{{}}', 'completed', now() - interval '1 day', 1,
                       now() - interval '2 h' + g * interval '1 ms'
                FROM generate_series(1, {N}) AS g;
                """
            )
            await conn.execute(f"VACUUM ANALYZE {jobs}")
            await conn.execute(
                f"""INSERT INTO {jobs} (kind, payload, state, run_at)
                SELECT 'other', '{{}}', 'pending', now() - interval '1 minute'
                FROM generate_series(1, {N})"""
            )
        finally:
            await conn.close()

    async def drop() -> None:
        conn = await asyncpg.connect(dsn)
        try:
            await conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
        finally:
            await conn.close()

    try:
        asyncio.run(build())
        yield schema
    finally:
        asyncio.run(drop())


@pytest.fixture
async def big(dsn: str, backlog: str) -> AsyncIterator[aioqueue.Queue]:
    q = await aioqueue.Queue.connect(dsn, schema=backlog)
    try:
        yield q
    finally:
        await q.close()


async def _jit(conn: Any, sql: str, plan: str, types: list[str], args: tuple[Any, ...]) -> bool:
    """Whether the statement, prepared on ``conn``, gets a plan with JIT (its custom or its
    generic plan). Explained only, never run; in a rolled-back transaction."""
    tr = conn.transaction()
    await tr.start()
    try:
        await conn.execute(f"SET LOCAL plan_cache_mode = force_{plan}_plan")
        await conn.execute(f"PREPARE jit_guarded({', '.join(types)}) AS {sql}")
        placeholders = ", ".join(f"${i + 2}::{t}" for i, t in enumerate(types))
        call = await conn.fetchval(
            f"SELECT format($1, {placeholders})",
            "EXECUTE jit_guarded(" + ", ".join(["%L"] * len(types)) + ")",
            *args,
        )
        raw = await conn.fetchval("EXPLAIN (FORMAT JSON) " + call)
    finally:
        await tr.rollback()
        await conn.execute("DEALLOCATE jit_guarded")  # a PREPARE outlives its transaction
    return "JIT" in json.loads(raw)[0]


async def test_no_hot_statement_needs_a_session_setting_to_stay_out_of_jit(
    big: aioqueue.Queue, conn: asyncpg.Connection
) -> None:
    """On a connection aioqueue does not set up (``tx=``, a pool of the user's, a pooler in
    transaction mode) with JIT on, every hot statement but the claim is costed far under
    jit_above_cost at any table size: constant LIMITs, arrays bounded by the batch."""
    await conn.execute("SET jit = on")
    sql, types = big.queries.text(CLAIM[0]), CLAIM[1]
    # the backlog is big enough to matter: left to itself, the claim's generic plan is compiled
    assert await _jit(conn, sql, "generic", types, CLAIM_ARGS)
    compiled = [
        (name, plan)
        for name, types, args in HOT
        for plan in ("custom", "generic")
        if await _jit(conn, big.queries.text(name), plan, types, args)
    ]
    assert not compiled


async def test_aioqueues_connections_never_jit_compile_a_hot_statement(
    big: aioqueue.Queue,
) -> None:
    """The claim session (the worker's) and aioqueue's own pool run with jit=off."""
    claim_db = Dedicated(big.dsn, big.pool, application_name="t", settings=CLAIM_SESSION)
    try:
        claims = await claim_db.get()
        sql, types = big.queries.text(CLAIM[0]), CLAIM[1]
        for args in (CLAIM_ARGS, CLAIM_KINDS_ARGS):
            for plan in ("custom", "generic"):
                assert not await _jit(claims, sql, plan, types, args), plan
    finally:
        await claim_db.close()
    async with big.pool.acquire() as pooled:
        statements = [(CLAIM[0], CLAIM[1], CLAIM_ARGS), *HOT]
        compiled = [
            (name, plan)
            for name, types, args in statements
            for plan in ("custom", "generic")
            if await _jit(pooled, big.queries.text(name), plan, types, args)
        ]
        assert not compiled


async def test_behind_a_pooler_the_claim_turns_jit_off_for_its_own_transaction(
    big: aioqueue.Queue, conn: asyncpg.Connection
) -> None:
    """Behind a transaction pooler no session setting can be relied on, and a DBA may force
    generic plans: the claim's transaction sets jit=off (and asynchronous commit) for itself."""
    await conn.execute("SET jit = on")
    await conn.execute("SET plan_cache_mode = force_generic_plan")
    db = Dedicated(
        None, big.pool, application_name="t", settings=CLAIM_TRANSACTION, per_transaction=True
    )
    sql, types = big.queries.text(CLAIM[0]), CLAIM[1]
    async with db.transaction(conn):
        assert await conn.fetchval("SELECT current_setting('synchronous_commit')") == "off"
        assert not await _jit(conn, sql, "generic", types, CLAIM_ARGS)
    # for that transaction only: the session (another client's, behind a pooler) is untouched
    assert await conn.fetchval("SELECT current_setting('jit')") == "on"
    assert await _jit(conn, sql, "generic", types, CLAIM_ARGS)
