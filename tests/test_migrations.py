"""Migrations: idempotent, safe when processes race, versioned, and matching the snapshot."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

import asyncpg
import pytest

import aioqueue
from aioqueue._db.migrate import latest_version

from .schema_snapshot import snapshot

pytestmark = pytest.mark.anyio
SNAPSHOT = Path(__file__).parent / "db" / "schema_snapshot.sql"


async def test_migrating_twice_is_a_noop(q: aioqueue.Queue) -> None:
    assert await q.migrate() == []
    assert await q.migrate() == []


async def test_concurrent_migrations_in_processes_and_in_process(dsn: str, schema: str) -> None:
    code = (
        "import asyncio, sys, aioqueue\n"
        "async def main():\n"
        "    q = await aioqueue.Queue.connect(sys.argv[1], schema=sys.argv[2])\n"
        "    await q.close()\n"
        "asyncio.run(main())\n"
    )
    procs = [
        await asyncio.create_subprocess_exec(sys.executable, "-c", code, dsn, schema)
        for _ in range(3)
    ]
    queues = await asyncio.gather(*[aioqueue.Queue.connect(dsn, schema=schema) for _ in range(5)])
    assert [await p.wait() for p in procs] == [0, 0, 0]
    try:
        versions = await queues[0].pool.fetch(f'SELECT version FROM "{schema}".migrations')
        assert sorted(r["version"] for r in versions) == list(range(1, latest_version() + 1))
    finally:
        await queues[0].pool.execute(f'DROP SCHEMA "{schema}" CASCADE')
        for queue in queues:
            await queue.close()


async def test_newer_database_schema_is_refused(q: aioqueue.Queue, dsn: str) -> None:
    s = q.config.schema
    await q.pool.execute(
        f"INSERT INTO \"{s}\".migrations (version, name) VALUES ({latest_version() + 1}, 'future')"
    )
    with pytest.raises(aioqueue.SchemaOutdated, match="upgrade aioqueue"):
        await aioqueue.Queue.connect(dsn, schema=s)
    with pytest.raises(aioqueue.SchemaOutdated):
        await aioqueue.Queue.connect(dsn, schema=s, migrate=False)


async def test_uninstalled_schema_with_migrate_false(dsn: str) -> None:
    with pytest.raises(aioqueue.SchemaNotInstalled, match="aioqueue migrate"):
        await aioqueue.Queue.connect(dsn, schema="never_here", migrate=False)


async def test_schema_matches_committed_snapshot(
    q: aioqueue.Queue, conn: asyncpg.Connection
) -> None:
    current = await snapshot(conn, q.config.schema)
    assert current == SNAPSHOT.read_text(), (
        "the migrated schema changed: review the diff, then regenerate with "
        "`python -m tests.schema_snapshot > tests/db/schema_snapshot.sql`"
    )


async def test_heartbeats_can_stay_hot(q: aioqueue.Queue, conn: asyncpg.Connection) -> None:
    s = q.config.schema
    indexdefs = await conn.fetch(
        "SELECT indexdef FROM pg_indexes WHERE schemaname = $1 AND tablename = 'jobs'", s
    )
    assert all("lease_expires_at" not in r["indexdef"] for r in indexdefs)
    options = await conn.fetchval(
        f"SELECT reloptions FROM pg_class WHERE oid = '\"{s}\".jobs'::regclass"
    )
    fillfactor = int(next(o for o in options if o.startswith("fillfactor=")).split("=")[1])
    assert fillfactor <= 80
    unique = [r["indexdef"] for r in indexdefs if "jobs_unique_active" in r["indexdef"]]
    assert "UNIQUE" in unique[0]
    assert "(kind, unique_key)" in unique[0]
    assert "'pending'" in unique[0] and "'scheduled'" in unique[0] and "'running'" in unique[0]
