"""Test harness: a real PostgreSQL ($AIOQUEUE_TEST_DSN, else the embedded server), one fresh
database per session and one fresh schema per test."""

from __future__ import annotations

import asyncio
import inspect
import os
import secrets
import urllib.parse
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import asyncpg
import pytest

import aioqueue
from aioqueue._db import embedded
from tests.support.roles import Roles

ROOT = Path(__file__).resolve().parent.parent
TEST_DATA_DIR = ROOT / ".aioqueue" / "pgdata-test"


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        func = getattr(item, "function", None)
        if func is not None and inspect.iscoroutinefunction(func):
            item.add_marker(pytest.mark.anyio)


def skip_unless_required(tool: str, reason: str) -> None:
    """Skip for want of ``tool``, unless $AIOQUEUE_TEST_REQUIRE (a comma-separated list, set by
    CI, which installs them) names it: then the test fails instead of silently not running."""
    required = {t.strip() for t in os.environ.get("AIOQUEUE_TEST_REQUIRE", "").split(",")}
    if tool in required:
        pytest.fail(f"{reason} (required here: AIOQUEUE_TEST_REQUIRE={tool})")
    pytest.skip(reason)


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


def _with_database(dsn: str, database: str) -> str:
    parts = urllib.parse.urlsplit(dsn)
    return urllib.parse.urlunsplit(parts._replace(path="/" + database))


@pytest.fixture(scope="session")
def server_dsn() -> Iterator[str]:
    """DSN of the server under test (maintenance database)."""
    configured = os.environ.get("AIOQUEUE_TEST_DSN")
    if configured:
        yield configured
        return
    was_running = embedded.server_dsn(TEST_DATA_DIR) is not None
    dsn = embedded.ensure_server(TEST_DATA_DIR)
    asyncio.run(_cap_wal(dsn))
    yield dsn
    if not was_running and not os.environ.get("AIOQUEUE_TEST_KEEP_SERVER"):
        embedded.stop_server(TEST_DATA_DIR)


async def _cap_wal(dsn: str) -> None:
    """The test server's WAL stays small: at the default max_wal_size (1 GB) the suite's
    million-row tables left ~1 GB of WAL files in .aioqueue/pgdata-test."""
    conn = await asyncpg.connect(dsn)
    try:
        if await conn.fetchval("SELECT current_setting('max_wal_size') <> '256MB'"):
            await conn.execute("ALTER SYSTEM SET max_wal_size = '256MB'")
            await conn.execute("ALTER SYSTEM SET min_wal_size = '64MB'")
            await conn.execute("SELECT pg_reload_conf()")
    finally:
        await conn.close()


@pytest.fixture(scope="session")
def dsn(server_dsn: str) -> Iterator[str]:
    """A fresh database for this test session, dropped at the end."""
    name = f"aioqueue_test_{os.getpid()}_{secrets.token_hex(3)}"

    async def run(sql: str) -> None:
        conn = await asyncpg.connect(server_dsn)
        try:
            await conn.execute(sql)
        finally:
            await conn.close()

    asyncio.run(run(f'CREATE DATABASE "{name}"'))
    yield _with_database(server_dsn, name)
    asyncio.run(run(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


@pytest.fixture
async def private_db(server_dsn: str) -> AsyncIterator[tuple[str, str]]:
    """A database of this test's own (the failover tests make it read-only): its DSN and
    name; dropped at the end."""
    name = f"aq_db_{secrets.token_hex(4)}"
    admin = await asyncpg.connect(server_dsn)
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
        yield _with_database(server_dsn, name), name
    finally:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()


@pytest.fixture
def schema() -> str:
    return f"t_{secrets.token_hex(5)}"


@pytest.fixture
async def q(dsn: str, schema: str) -> AsyncIterator[aioqueue.Queue]:
    queue = await aioqueue.Queue.connect(dsn, schema=schema)
    try:
        yield queue
    finally:
        await queue.pool.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
        await queue.close()


@pytest.fixture
async def conn(dsn: str) -> AsyncIterator[asyncpg.Connection]:
    """A plain connection for assertions and raw SQL."""
    c = await asyncpg.connect(dsn)
    try:
        yield c
    finally:
        await c.close()


@pytest.fixture
async def roles(conn: asyncpg.Connection) -> AsyncIterator[Roles]:
    """Cluster-wide roles made by ``roles.create(prefix)``, dropped at the end."""
    r = Roles(conn)
    try:
        yield r
    finally:
        await r.drop_all()
