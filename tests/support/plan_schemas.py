"""The plan guards' big schemas: filled once per module (in an event loop of their own, as a
module-scoped fixture cannot share the tests' loop) and dropped after the module."""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import asynccontextmanager

import asyncpg

import aioqueue


def built_schema(
    dsn: str, prefix: str, fill: Callable[[aioqueue.Queue, str], Awaitable[None]]
) -> Iterator[str]:
    """Yield a fresh schema (``<prefix>_<random>``) that ``fill(queue, schema)`` has filled."""
    schema = f"{prefix}_{secrets.token_hex(4)}"

    async def build() -> None:
        q = await aioqueue.Queue.connect(dsn, schema=schema)
        try:
            await fill(q, schema)
        finally:
            await q.close()

    async def drop() -> None:
        conn = await asyncpg.connect(dsn)
        try:
            await conn.execute(f'DROP SCHEMA "{schema}" CASCADE')
        finally:
            await conn.close()

    asyncio.run(build())
    try:
        yield schema
    finally:
        asyncio.run(drop())


@asynccontextmanager
async def queue_on(dsn: str, schema: str) -> AsyncIterator[aioqueue.Queue]:
    q = await aioqueue.Queue.connect(dsn, schema=schema)
    try:
        yield q
    finally:
        await q.close()
