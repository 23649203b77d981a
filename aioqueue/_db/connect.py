"""Pools, dedicated connections, and unwrapping the caller's transaction (``tx=``)."""

from __future__ import annotations

from typing import Any

import asyncpg

from ..config import mask_dsn
from ..errors import ConfigurationError

APPLICATION_NAME = "aioqueue"


async def create_pool(
    dsn: str, *, min_size: int = 1, max_size: int = 10, application_name: str = APPLICATION_NAME
) -> asyncpg.Pool:
    """An asyncpg pool; connection errors name the server but never the password."""
    try:
        pool = await asyncpg.create_pool(
            dsn,
            min_size=min_size,
            max_size=max_size,
            server_settings={"application_name": application_name},
        )
    except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError, ValueError) as exc:
        raise ConfigurationError(
            f"cannot connect to {mask_dsn(dsn)}: {type(exc).__name__}: {mask_dsn(str(exc))}"
        ) from None
    assert pool is not None
    return pool


async def connect(dsn: str, *, application_name: str = APPLICATION_NAME) -> asyncpg.Connection:
    """One dedicated connection (LISTEN, migrations, CLI)."""
    try:
        return await asyncpg.connect(dsn, server_settings={"application_name": application_name})
    except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError, ValueError) as exc:
        raise ConfigurationError(
            f"cannot connect to {mask_dsn(dsn)}: {type(exc).__name__}: {mask_dsn(str(exc))}"
        ) from None


async def unwrap_tx(tx: Any) -> asyncpg.Connection:
    """The asyncpg connection behind ``tx``, which must already be inside a transaction.

    Accepts an asyncpg ``Connection`` (or pool proxy), or an SQLAlchemy ``AsyncConnection`` /
    ``AsyncSession`` on the asyncpg driver. aioqueue never begins or commits the transaction;
    SQLAlchemy begins it lazily, so an idle one is started through SQLAlchemy itself.
    """
    if isinstance(tx, asyncpg.Connection | asyncpg.pool.PoolConnectionProxy):
        if not tx.is_in_transaction():
            raise ConfigurationError(
                "tx= connection is not inside a transaction; use `async with conn.transaction():`"
            )
        return tx  # type: ignore[return-value]
    module = type(tx).__module__
    if module.startswith("sqlalchemy"):
        return await _unwrap_sqlalchemy(tx)
    raise ConfigurationError(
        f"tx= must be an asyncpg Connection or an SQLAlchemy AsyncConnection/AsyncSession, "
        f"got {type(tx).__name__}"
    )


async def _unwrap_sqlalchemy(tx: Any) -> asyncpg.Connection:
    from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession

    if isinstance(tx, AsyncSession):
        conn = await tx.connection()
    elif isinstance(tx, AsyncConnection):
        conn = tx
    else:
        raise ConfigurationError(
            f"tx= must be an SQLAlchemy AsyncConnection or AsyncSession, got {type(tx).__name__}"
        )
    if not conn.in_transaction():
        raise ConfigurationError("tx= SQLAlchemy connection is not inside a transaction")
    raw = await conn.get_raw_connection()
    driver = raw.driver_connection
    if not isinstance(driver, asyncpg.Connection):
        raise ConfigurationError(
            f"tx= SQLAlchemy connection must use the asyncpg driver, got {type(driver).__name__}"
        )
    if not driver.is_in_transaction():
        # SQLAlchemy's asyncpg adapter sends BEGIN with its first statement.
        await conn.exec_driver_sql("SELECT 1")
        if not driver.is_in_transaction():
            raise ConfigurationError("tx= SQLAlchemy connection is in autocommit mode")
    return driver
