"""Where the DSN and the schema come from: argument, then environment, then the default."""

from __future__ import annotations

import asyncpg
import pytest

import aioqueue
from aioqueue import config


def test_dsn_precedence_and_sqlalchemy_urls() -> None:
    env = {"AIOQUEUE_DSN": "postgresql://a/x", "DATABASE_URL": "postgresql://b/y"}
    assert config.resolve_dsn("postgresql://c/z", env) == "postgresql://c/z"
    assert config.resolve_dsn(None, env) == "postgresql://a/x"
    assert config.resolve_dsn(None, {"DATABASE_URL": "postgresql://b/y"}) == "postgresql://b/y"
    assert config.resolve_dsn(None, {}) is None  # the embedded server
    # apps often keep SQLAlchemy's form in DATABASE_URL: the driver part is dropped
    sqlalchemy = {"DATABASE_URL": "postgresql+asyncpg://u:p@h:5433/app?ssl=require"}
    assert config.resolve_dsn(None, sqlalchemy) == "postgresql://u:p@h:5433/app?ssl=require"
    assert config.resolve_dsn("postgres+psycopg://h/d") == "postgres://h/d"


def test_schema_precedence_and_validation() -> None:
    assert config.resolve_schema(None, {}) == "aioqueue"
    assert config.resolve_schema(None, {"AIOQUEUE_SCHEMA": "jobs_a"}) == "jobs_a"
    assert config.resolve_schema("jobs_b", {"AIOQUEUE_SCHEMA": "jobs_a"}) == "jobs_b"
    with pytest.raises(aioqueue.ConfigurationError):
        config.resolve_schema(None, {"AIOQUEUE_SCHEMA": "bad; DROP TABLE x"})


async def test_queue_uses_the_environment(
    dsn: str, schema: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AIOQUEUE_SCHEMA", schema)
    monkeypatch.setenv("DATABASE_URL", dsn.replace("postgresql://", "postgresql+asyncpg://", 1))
    monkeypatch.delenv("AIOQUEUE_DSN", raising=False)
    async with await aioqueue.Queue.connect() as q:
        assert q.config.schema == schema
        out = await q.enqueue("k")
        conn = await asyncpg.connect(dsn)
        try:
            assert await conn.fetchval(f'SELECT count(*) FROM "{schema}".jobs') == 1
            await conn.execute(f'DROP SCHEMA "{schema}" CASCADE')
        finally:
            await conn.close()
        assert out.id == 1


def test_transaction_pooling_from_env() -> None:
    assert config.transaction_pooling_from_env({}) is False
    assert config.transaction_pooling_from_env({"AIOQUEUE_TRANSACTION_POOLING": "1"}) is True
    assert config.transaction_pooling_from_env({"AIOQUEUE_TRANSACTION_POOLING": "off"}) is False
    with pytest.raises(aioqueue.ConfigurationError, match="AIOQUEUE_TRANSACTION_POOLING"):
        config.transaction_pooling_from_env({"AIOQUEUE_TRANSACTION_POOLING": "maybe"})
