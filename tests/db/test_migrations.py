"""Migrations: idempotent, safe when processes race, versioned, and matching the committed
catalog snapshot; the schema keeps heartbeats HOT-friendly and dedupe enforced by an index."""

from __future__ import annotations

import asyncio
import json
import sys
from collections.abc import Awaitable
from pathlib import Path
from typing import Any

import anyio
import asyncpg
import pytest

import aioqueue
from aioqueue._db.migrate import latest_version
from tests.support.schema_snapshot import snapshot

pytestmark = pytest.mark.anyio
ROOT = Path(__file__).resolve().parents[2]
SNAPSHOT = Path(__file__).parent / "schema_snapshot.sql"
REGENERATE = "python -m tests.support.schema_snapshot > tests/db/schema_snapshot.sql"
ALL_VERSIONS = list(range(1, latest_version() + 1))

MIGRATE_IN_A_PROCESS = """
import asyncio, json, sys
import aioqueue

async def main():
    q = await aioqueue.Queue.connect(sys.argv[1], schema=sys.argv[2], migrate=None)
    try:
        print(json.dumps(await q.migrate()))
    finally:
        await q.close()

asyncio.run(main())
"""


async def versions(conn: asyncpg.Connection, schema: str) -> list[int]:
    rows = await conn.fetch(f'SELECT version FROM "{schema}".migrations ORDER BY version')
    return [r["version"] for r in rows]


async def drop(conn: asyncpg.Connection, schema: str) -> None:
    await conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')


class MigrationGate:
    """Holds the migration lock of one schema, so racers pile up behind it and then all go at
    once; ``wait_for_waiters`` watches pg_locks until the expected number is queued."""

    def __init__(self, conn: asyncpg.Connection, schema: str) -> None:
        self.conn = conn
        self.schema = schema
        self._tr: Any = None

    async def close(self) -> None:
        self._tr = self.conn.transaction()
        await self._tr.start()
        # the same transaction-scoped lock aioqueue's migrate takes (migrations_lock.sql)
        await self.conn.execute(
            "SELECT pg_advisory_xact_lock(hashtext('aioqueue.migrate'), hashtext($1))",
            self.schema,
        )

    async def wait_for_waiters(self, n: int, timeout: float = 30) -> None:
        query = """SELECT count(*) FROM pg_locks
                   WHERE locktype = 'advisory' AND NOT granted AND objsubid = 2
                     AND classid = (hashtext('aioqueue.migrate')::bigint & 4294967295)::oid
                     AND objid = (hashtext($1)::bigint & 4294967295)::oid"""
        with anyio.fail_after(timeout):
            # pg_locks has no change notification: poll the condition, under a deadline
            while await self.conn.fetchval(query, self.schema) < n:  # noqa: ASYNC110
                await anyio.sleep(0.02)

    async def open(self) -> None:
        await self._tr.commit()


async def test_migrating_twice_is_a_noop(q: aioqueue.Queue, conn: asyncpg.Connection) -> None:
    before = await snapshot(conn, q.config.schema)
    assert await versions(conn, q.config.schema) == ALL_VERSIONS
    assert await q.migrate() == []
    assert await q.migrate() == []
    assert await snapshot(conn, q.config.schema) == before
    # and connecting again (migrate=True is the default) changes nothing either
    again = await aioqueue.Queue.connect(q.dsn, schema=q.config.schema)
    await again.close()
    assert await versions(conn, q.config.schema) == ALL_VERSIONS


async def test_processes_migrating_at_once_do_not_collide(
    dsn: str, conn: asyncpg.Connection, q: aioqueue.Queue
) -> None:
    schema = f"{q.config.schema}_race"  # q: the same migrations applied the ordinary way
    gate = MigrationGate(conn, schema)
    await gate.close()
    procs = [
        await asyncio.create_subprocess_exec(
            sys.executable,
            "-c",
            MIGRATE_IN_A_PROCESS,
            dsn,
            schema,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            cwd=ROOT,
        )
        for _ in range(3)
    ]
    try:
        await gate.wait_for_waiters(3)  # all three are inside migrate(), queued on the lock
        await gate.open()
        with anyio.fail_after(60):
            outputs = [await p.communicate() for p in procs]
        assert [p.returncode for p in procs] == [0, 0, 0], [err.decode() for _, err in outputs]
        applied = [json.loads(out) for out, _ in outputs]
        # each migration ran exactly once, in whichever process got the lock first
        assert sorted(v for a in applied for v in a) == ALL_VERSIONS
        assert await versions(conn, schema) == ALL_VERSIONS
        # the raced schema is exactly what one ordinary migration produces
        assert await snapshot(conn, schema) == await snapshot(conn, q.config.schema)
    finally:
        for p in procs:
            if p.returncode is None:
                p.kill()
                await p.wait()
        await drop(conn, schema)


async def test_many_concurrent_connects_in_one_process(
    dsn: str, schema: str, conn: asyncpg.Connection
) -> None:
    gate = MigrationGate(conn, schema)
    await gate.close()
    connects: list[asyncio.Task[aioqueue.Queue]] = [
        asyncio.create_task(aioqueue.Queue.connect(dsn, schema=schema, pool_max_size=2))
        for _ in range(10)
    ]
    try:
        await gate.wait_for_waiters(10)
        await gate.open()
        with anyio.fail_after(60):
            queues = await asyncio.gather(*connects)
        try:
            assert await versions(conn, schema) == ALL_VERSIONS
            outs = await asyncio.gather(*[qq.enqueue("k", unique_key="u") for qq in queues])
            assert len({o.id for o in outs}) == 1
        finally:
            await asyncio.gather(*[qq.close() for qq in queues])
    finally:
        for task in connects:
            if not task.done():
                task.cancel()
        await asyncio.gather(*connects, return_exceptions=True)
        await drop(conn, schema)


async def _expect(awaitable: Awaitable[aioqueue.Queue], error: type[Exception]) -> Exception:
    try:
        queue = await awaitable
    except error as exc:
        return exc
    await queue.close()
    pytest.fail(f"{error.__name__} not raised")


async def test_a_newer_database_schema_is_refused(
    q: aioqueue.Queue, conn: asyncpg.Connection
) -> None:
    s = q.config.schema
    newer = latest_version() + 1
    await conn.execute(f"INSERT INTO \"{s}\".migrations (version, name) VALUES ({newer}, 'future')")
    for migrate in (True, False):
        err = await _expect(
            aioqueue.Queue.connect(q.dsn, schema=s, migrate=migrate), aioqueue.SchemaOutdated
        )
        assert isinstance(err, aioqueue.SchemaOutdated)
        assert (err.current, err.required) == (newer, latest_version())
        assert "upgrade aioqueue" in str(err)
    with pytest.raises(aioqueue.SchemaOutdated):
        await q.migrate()


async def test_a_newer_database_is_refused_before_anything_is_applied(
    q: aioqueue.Queue, conn: asyncpg.Connection
) -> None:
    """Even when one of this code's versions is missing from the record, migrate() must not
    apply it to a database a newer aioqueue owns."""
    s = q.config.schema
    before = await snapshot(conn, s)
    await conn.execute(
        f'DELETE FROM "{s}".migrations WHERE version = {latest_version()};'
        f"INSERT INTO \"{s}\".migrations (version, name) VALUES (99, 'future')"
    )
    await _expect(aioqueue.Queue.connect(q.dsn, schema=s), aioqueue.SchemaOutdated)
    assert await versions(conn, s) == [*ALL_VERSIONS[:-1], 99]
    assert await snapshot(conn, s) == before


async def test_an_older_database_schema_needs_migrate(
    q: aioqueue.Queue, conn: asyncpg.Connection
) -> None:
    s = q.config.schema
    await conn.execute(f'DELETE FROM "{s}".migrations WHERE version = {latest_version()}')
    err = await _expect(
        aioqueue.Queue.connect(q.dsn, schema=s, migrate=False), aioqueue.SchemaOutdated
    )
    assert isinstance(err, aioqueue.SchemaOutdated)
    assert (err.current, err.required) == (latest_version() - 1, latest_version())
    assert "aioqueue migrate" in str(err)


async def test_migrate_false_on_an_uninstalled_schema(
    dsn: str, schema: str, conn: asyncpg.Connection
) -> None:
    err = await _expect(
        aioqueue.Queue.connect(dsn, schema=schema, migrate=False), aioqueue.SchemaNotInstalled
    )
    assert "aioqueue migrate" in str(err)
    # migrate=None neither migrates nor checks (what `aioqueue migrate` itself uses)
    bare = await aioqueue.Queue.connect(dsn, schema=schema, migrate=None)
    await bare.close()
    present = await conn.fetchval("SELECT count(*) FROM pg_namespace WHERE nspname = $1", schema)
    assert present == 0  # nothing was created


async def test_schema_matches_the_committed_snapshot(
    q: aioqueue.Queue, conn: asyncpg.Connection
) -> None:
    current = await snapshot(conn, q.config.schema)
    assert current == SNAPSHOT.read_text(), (
        "the migrated schema differs from tests/db/schema_snapshot.sql: review the change, "
        f"then regenerate it with `{REGENERATE}`"
    )


async def test_heartbeats_can_stay_hot(q: aioqueue.Queue, conn: asyncpg.Connection) -> None:
    """RELIABILITY G5: the lease column is in no index (any index rules HOT updates out) and
    the table leaves free space on each page (fillfactor <= 80)."""
    s = q.config.schema
    indexed = await conn.fetch(
        """SELECT i.indexrelid::regclass::text AS name
           FROM pg_index i
           WHERE i.indrelid = $1::regclass
             AND (EXISTS (SELECT 1 FROM pg_attribute a
                          WHERE a.attrelid = i.indrelid AND a.attname = 'lease_expires_at'
                            AND a.attnum = ANY (i.indkey))
                  OR pg_get_expr(i.indexprs, i.indrelid) LIKE '%lease_expires_at%'
                  OR pg_get_expr(i.indpred, i.indrelid) LIKE '%lease_expires_at%')""",
        f'"{s}".jobs',
    )
    assert indexed == []
    options = await conn.fetchval(
        "SELECT reloptions FROM pg_class WHERE oid = $1::regclass", f'"{s}".jobs'
    )
    fillfactor = int(next(o for o in options or [] if o.startswith("fillfactor=")).split("=")[1])
    assert fillfactor <= 80


async def test_dedupe_is_a_partial_unique_index_over_active_states(
    q: aioqueue.Queue, conn: asyncpg.Connection
) -> None:
    rows = await conn.fetch(
        """SELECT ARRAY(SELECT a.attname::text FROM unnest(i.indkey) WITH ORDINALITY AS k(n, o)
                        JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k.n
                        ORDER BY k.o) AS cols,
                  pg_get_expr(i.indpred, i.indrelid) AS pred
           FROM pg_index i
           WHERE i.indrelid = $1::regclass AND i.indisunique AND i.indisvalid
             AND i.indpred IS NOT NULL""",
        f'"{q.config.schema}".jobs',
    )
    matching = [r for r in rows if r["cols"] == ["kind", "unique_key"]]
    assert len(matching) == 1, rows
    pred = matching[0]["pred"]
    for state in ("pending", "scheduled", "running"):
        assert f"'{state}'" in pred
    for state in ("completed", "cancelled", "failed"):
        assert f"'{state}'" not in pred
