"""Cluster-wide roles for the least-privilege tests, and the documented SQL that grants them
what they need: the SECURITY DEFINER wrapper (examples/sql_security_definer.sql) and the
least-privilege grants (examples/sql_least_privilege.sql), rewritten for a test's schema and
roles. The ``roles`` fixture (tests/conftest.py) drops its roles at the end."""

from __future__ import annotations

import re
import secrets
import urllib.parse
from pathlib import Path

import asyncpg

ROOT = Path(__file__).resolve().parents[2]
WRAPPER = ROOT / "examples" / "sql_security_definer.sql"
LEAST_PRIVILEGE = ROOT / "examples" / "sql_least_privilege.sql"


class Roles:
    """Cluster-wide roles with unique names, dropped at the end."""

    def __init__(self, conn: asyncpg.Connection) -> None:
        self.conn = conn
        self.names: list[str] = []
        self.password = secrets.token_hex(12)

    async def create(self, prefix: str) -> str:
        name = f"{prefix}_{secrets.token_hex(4)}"
        await self.conn.execute(f"CREATE ROLE {name} LOGIN PASSWORD '{self.password}'")
        self.names.append(name)
        return name

    async def drop_all(self) -> None:
        for name in self.names:
            await self.conn.execute(f"DROP OWNED BY {name} CASCADE")
            await self.conn.execute(f"DROP ROLE {name}")


def dsn_as(dsn: str, user: str, password: str) -> str:
    """``dsn`` with another user and password."""
    parts = urllib.parse.urlsplit(dsn)
    host = parts.netloc.rpartition("@")[2]
    userinfo = f"{user}:{urllib.parse.quote(password, safe='')}"
    return urllib.parse.urlunsplit(parts._replace(netloc=f"{userinfo}@{host}"))


def wrapper_sql(schema: str, wrapper_schema: str, role: str) -> str:
    sql = WRAPPER.read_text()
    assert "aioqueue.add_job(" in sql and "SECURITY DEFINER" in sql
    assert "SET search_path = pg_catalog, pg_temp" in sql
    assert "FROM PUBLIC" in sql
    return (
        sql.replace("aioqueue.add_job(", f'"{schema}".add_job(')
        .replace("app_jobs", wrapper_schema)
        .replace("app_user", role)
    )


def least_privilege_sql(schema: str, worker: str, producer: str, lowpriv: str) -> str:
    """examples/sql_least_privilege.sql for this schema and these roles (its instructions:
    replace the schema name and the three role names)."""
    sql = LEAST_PRIVILEGE.read_text()
    for old, new in (("aq_worker", worker), ("aq_producer", producer), ("app_lowpriv", lowpriv)):
        sql = re.sub(rf"\b{old}\b", new, sql)
    return re.sub(r"\baioqueue\b", f'"{schema}"', sql)
