"""What a stock server's DBA may have set differs from the embedded server: a role that is not
a superuser owns the schema, idle sessions are ended (idle_session_timeout), generic plans are
forced (plan_cache_mode) and statements have a timeout. The queue works under all of them."""

from __future__ import annotations

import secrets
import urllib.parse
from collections.abc import AsyncIterator
from typing import Any

import anyio
import asyncpg
import pytest

import aioqueue


def _as_role(dsn: str, role: str) -> str:
    parts = urllib.parse.urlsplit(dsn)
    host = parts.netloc.rpartition("@")[2]
    return urllib.parse.urlunsplit(parts._replace(netloc=f"{role}@{host}"))


@pytest.fixture
async def owner(conn: asyncpg.Connection) -> AsyncIterator[str]:
    """A plain role (no superuser, no CREATEDB/CREATEROLE) allowed to create schemas here.
    Trust authentication (the embedded server, CI's PostgreSQL 15) lets it log in."""
    role = f"aq_owner_{secrets.token_hex(4)}"
    database = await conn.fetchval("SELECT current_database()")
    await conn.execute(f"CREATE ROLE {role} LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE")
    await conn.execute(f'GRANT CREATE ON DATABASE "{database}" TO {role}')
    try:
        yield role
    finally:
        # its sessions first: a worker's connections may still be closing
        await conn.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = $1", role
        )
        await conn.execute(f"DROP OWNED BY {role} CASCADE")
        await conn.execute(f"DROP ROLE {role}")


async def _round_trip(q: aioqueue.Queue, **worker: Any) -> None:
    """Enqueue, drain with a worker, wait for a result, and the admin reads."""
    tasks = aioqueue.Tasks()

    @tasks.task("double")
    async def double(ctx: aioqueue.JobContext, payload: int) -> int:
        return payload * 2

    one = await q.enqueue("double", 21)
    many = await q.enqueue_many([{"kind": "double", "payload": i} for i in range(5)])
    keyed = await q.enqueue("double", 1, unique_key="once")
    assert (await q.enqueue("double", 1, unique_key="once")).id == keyed.id
    async with anyio.create_task_group() as tg:
        waited: list[Any] = []

        async def wait() -> None:
            waited.append((await q.wait(one.id, timeout=60)).result)

        tg.start_soon(wait)
        await aioqueue.Worker(q, tasks, poll_interval=0.05, **worker).run(until_empty=True)
    assert waited == [42]
    assert [(await q.get_job(o.id)).result for o in many] == [0, 2, 4, 6, 8]
    assert (await q.stats()) is not None
    done = {j.id for j in await q.list_jobs(state="completed", limit=100)}
    assert {one.id, keyed.id, *(o.id for o in many)} <= done


async def test_a_plain_role_owns_and_runs_the_queue(dsn: str, schema: str, owner: str) -> None:
    async with await aioqueue.Queue.connect(_as_role(dsn, owner), schema=schema) as q:
        assert not await q.pool.fetchval("SELECT rolsuper FROM pg_roles WHERE rolname = $1", owner)
        await _round_trip(q)


async def test_a_dba_s_session_settings(
    dsn: str, schema: str, owner: str, conn: asyncpg.Connection
) -> None:
    """Generic plans forced and a statement timeout for the whole role: both plain settings the
    queue runs under (the claim session forces the generic plan anyway)."""
    await conn.execute(f"ALTER ROLE {owner} SET plan_cache_mode = force_generic_plan")
    await conn.execute(f"ALTER ROLE {owner} SET statement_timeout = '5s'")
    await conn.execute(f"ALTER ROLE {owner} SET lock_timeout = '2s'")
    async with await aioqueue.Queue.connect(_as_role(dsn, owner), schema=schema) as q:
        assert await q.pool.fetchval("SHOW plan_cache_mode") == "force_generic_plan"
        await _round_trip(q)


async def test_idle_sessions_ended_by_the_server(
    dsn: str, schema: str, owner: str, conn: asyncpg.Connection
) -> None:
    """idle_session_timeout ends every connection left idle (the pool's, the kept-aside one,
    the listener's): each is replaced when next needed, and nothing is lost."""
    if int(await conn.fetchval("SHOW server_version_num")) < 140000:
        pytest.skip("idle_session_timeout exists from PostgreSQL 14 on")
    async with await aioqueue.Queue.connect(_as_role(dsn, owner), schema=schema) as q:
        await q.enqueue("double", 0)  # the pool and the kept-aside connection are open
        await conn.execute(f"ALTER ROLE {owner} SET idle_session_timeout = '300ms'")
        # only new sessions take the role's setting: end the current ones, as a DBA's restart
        opened = await _sessions_of(conn, owner)
        await conn.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = $1", owner
        )
        await _until_ended(conn, opened)
        await q.enqueue("double", 0)  # reconnects, then idles out again
        await _until_ended(conn, await _sessions_of(conn, owner))
        await _round_trip(q)  # the worker's listener is ended whenever it idles 300 ms


async def _sessions_of(conn: asyncpg.Connection, role: str) -> set[int]:
    pids = await conn.fetch("SELECT pid FROM pg_stat_activity WHERE usename = $1", role)
    return {r["pid"] for r in pids}


async def _until_ended(conn: asyncpg.Connection, pids: set[int]) -> None:
    """Until the server has ended these sessions. Not "until the role has none": asyncpg (0.32
    on) reopens a pool's min_size connections as soon as one is lost, and those idle out in
    turn."""
    with anyio.fail_after(30):
        while await conn.fetchval(  # noqa: ASYNC110 (only the server knows)
            "SELECT count(*) FROM pg_stat_activity WHERE pid = ANY($1::int[])", list(pids)
        ):
            await anyio.sleep(0.05)  # the server ends them; nothing to wait on from here


async def test_enqueue_right_after_the_server_ended_the_idle_connections(
    q: aioqueue.Queue, conn: asyncpg.Connection
) -> None:
    """A connection the server ended while idle, whose notice the driver has read but not yet
    the close, refuses to send ("cannot switch to state"): nothing was sent, so enqueue runs
    again on fresh connections instead of raising the driver's internal error."""
    for i in range(30):
        await q.enqueue("k", i)  # the kept-aside connection is open, then idle
        pids = await conn.fetchval(
            """SELECT array_agg(pid) FROM pg_stat_activity
            WHERE application_name = 'aioqueue' AND datname = current_database()"""
        )
        await conn.execute("SELECT pg_terminate_backend(pid) FROM unnest($1::int[]) AS pid", pids)
        with anyio.fail_after(30):
            while await conn.fetchval(  # noqa: ASYNC110 (only the server knows)
                "SELECT count(*) FROM pg_stat_activity WHERE pid = ANY($1::int[])", pids
            ):
                await anyio.sleep(0.001)
        await q.enqueue("k", i)
    assert await q.pool.fetchval(f'SELECT count(*) FROM "{q.config.schema}".jobs') == 60
