"""Numbered, forward-only migrations, each in its own transaction under an advisory lock."""

from __future__ import annotations

import re
from functools import cache

import asyncpg
import msgspec

from ..errors import SchemaNotInstalled, SchemaOutdated
from .queries import MIGRATIONS_DIR, Queries, render

_NAME_RE = re.compile(r"(\d{4})_([a-z0-9_]+)\.sql")
BREAKING_MARKER = "-- aioqueue: breaking"


class Migration(msgspec.Struct, frozen=True):
    version: int
    name: str
    text: str

    @property
    def breaking(self) -> bool:
        return self.text.lstrip().startswith(BREAKING_MARKER)


@cache
def migrations() -> tuple[Migration, ...]:
    found = []
    for path in sorted(MIGRATIONS_DIR.glob("*.sql")):
        match = _NAME_RE.fullmatch(path.name)
        if match is None:
            raise RuntimeError(f"badly named migration file {path.name}")
        found.append(Migration(int(match[1]), match[2], path.read_text()))
    versions = [m.version for m in found]
    if versions != list(range(1, len(found) + 1)):
        raise RuntimeError(f"migrations must be numbered 1..N without gaps, got {versions}")
    return tuple(found)


def latest_version() -> int:
    return migrations()[-1].version


async def migrate(
    conn: asyncpg.Connection | asyncpg.pool.PoolConnectionProxy, schema: str
) -> list[int]:
    """Apply pending migrations; returns the versions applied by this call (often none)."""
    q = Queries(schema)
    applied_now: list[int] = []
    while True:
        async with conn.transaction():
            await q.migrations_lock(conn)
            if not await q.schema_exists(conn):
                # DDL only when needed: a role without CREATE rights (least privilege, e.g. a
                # worker started by the CLI, which migrates) may connect to an installed schema
                await q.migrations_bootstrap(conn)
            applied = set(await q.migrations_applied(conn))
            newest = max(applied, default=0)
            if newest > latest_version():
                # a newer aioqueue owns this schema: refuse before changing anything
                raise SchemaOutdated(newest, latest_version())
            pending = [m for m in migrations() if m.version not in applied]
            if not pending:
                return applied_now
            step = pending[0]
            await conn.execute(render(step.text, schema))
            await q.migrations_record(
                conn, version=step.version, name=step.name, breaking=step.breaking
            )
            applied_now.append(step.version)


async def check_schema(conn: asyncpg.Connection | asyncpg.Pool, schema: str) -> None:
    """Raise unless the schema is installed at exactly the version this code needs."""
    q = Queries(schema)
    if not await q.schema_exists(conn):
        raise SchemaNotInstalled(
            f"aioqueue schema {schema!r} is not installed; run `aioqueue migrate` "
            "or connect with migrate=True",
            schema,
        )
    applied = await q.migrations_applied(conn)
    current = max(applied, default=0)
    if current != latest_version():
        raise SchemaOutdated(current, latest_version())
