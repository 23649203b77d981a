"""tx=: enqueue inside the caller's transaction (asyncpg, SQLAlchemy AsyncConnection and
AsyncSession). The job exists only if that transaction commits, workers are woken at commit,
and aioqueue never begins, commits or rolls back a transaction of its own on ``tx``."""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import AsyncIterator, Callable
from typing import Any

import anyio
import asyncpg
import pytest

import aioqueue

pytestmark = pytest.mark.anyio
_probes = itertools.count()


class Listener:
    """A LISTENing connection on the queue's channel. ``probe()`` sends a marker notification
    from another session and waits for it: every notification committed before it has then
    arrived (delivery is in commit order), so absence can be asserted without sleeping."""

    def __init__(self, conn: asyncpg.Connection, channel: str) -> None:
        self.conn = conn
        self.channel = channel
        self.payloads: list[str] = []
        self._changed = asyncio.Event()

    def _on(self, conn: object, pid: int, channel: str, payload: str) -> None:
        self.payloads.append(payload)
        self._changed.set()

    async def wait_for(self, predicate: Callable[[list[str]], bool], timeout: float = 5) -> None:
        with anyio.fail_after(timeout):
            while not predicate(self.payloads):
                self._changed.clear()
                await self._changed.wait()

    async def probe(self, sender: asyncpg.Connection) -> list[str]:
        """Everything received before the probe (the probe itself removed)."""
        marker = f"probe:{next(_probes)}"
        await sender.execute("SELECT pg_notify($1, $2)", self.channel, marker)
        await self.wait_for(lambda got: marker in got)
        before = self.payloads[: self.payloads.index(marker)]
        self.payloads.clear()
        return before


@pytest.fixture
async def listener(q: aioqueue.Queue) -> AsyncIterator[Listener]:
    assert q.dsn is not None
    c = await asyncpg.connect(q.dsn)
    channel = f"aioqueue_{q.config.schema}"  # the documented, fixed channel name
    got = Listener(c, channel)
    await c.add_listener(channel, got._on)
    try:
        yield got
    finally:
        await c.close()


class StatementLog:
    """Every statement asyncpg runs on one connection (asyncpg query loggers)."""

    def __init__(self, conn: asyncpg.Connection) -> None:
        self.queries: list[str] = []
        self._conn = conn

    async def __aenter__(self) -> StatementLog:
        self._conn.add_query_logger(self._log)
        return self

    async def __aexit__(self, *exc: object) -> None:
        # asyncpg hands records to loggers with loop.call_soon: one loop turn delivers all
        # of them (FIFO), deterministically
        await asyncio.sleep(0)
        self._conn.remove_query_logger(self._log)

    def _log(self, record: Any) -> None:
        self.queries.append(record.query)

    def transaction_control(self) -> list[str]:
        words = ("BEGIN", "COMMIT", "ROLLBACK", "SAVEPOINT", "RELEASE", "START TRANSACTION")
        return [q for q in self.queries if q.strip().upper().startswith(words)]


async def exists(q: aioqueue.Queue, job_id: int) -> bool:
    try:
        await q.get_job(job_id)
    except aioqueue.JobNotFound:
        return False
    return True


def sqlalchemy_url(dsn: str) -> Any:
    """The DSN for SQLAlchemy's asyncpg dialect. Unix-socket DSNs (?host=/dir&port=N) keep
    host and port in the query string, which the dialect passes on to asyncpg."""
    from sqlalchemy.engine import make_url

    return make_url(dsn).set(drivername="postgresql+asyncpg")


@pytest.fixture
async def engine(q: aioqueue.Queue) -> AsyncIterator[Any]:
    from sqlalchemy.ext.asyncio import create_async_engine

    assert q.dsn is not None
    eng = create_async_engine(sqlalchemy_url(q.dsn), pool_size=2)
    try:
        yield eng
    finally:
        await eng.dispose()


# -- asyncpg ----------------------------------------------------------------------------------


@pytest.mark.parametrize("unique_key", [None, "k"], ids=["insert", "add_jobs"])
async def test_asyncpg_commit_makes_the_job_visible_and_wakes_workers_at_commit(
    q: aioqueue.Queue, conn: asyncpg.Connection, listener: Listener, unique_key: str | None
) -> None:
    async with q.pool.acquire() as tx_conn:
        async with tx_conn.transaction():
            async with StatementLog(tx_conn) as log:
                out = await q.enqueue("tx", {"n": 1}, unique_key=unique_key, tx=tx_conn)
            assert len(log.queries) == 1 and not log.transaction_control()
            assert f'"{q.config.schema}".' in log.queries[0]  # the enqueue itself
            assert tx_conn.is_in_transaction()  # still the caller's, still open
            assert not await exists(q, out.id)  # invisible to others until commit
            assert await listener.probe(conn) == []  # and nobody woken yet
        assert (await q.get_job(out.id)).payload == {"n": 1}
        await listener.wait_for(lambda got: "" in got)  # the wake-up came with the commit


@pytest.mark.parametrize("unique_key", [None, "k"], ids=["insert", "add_jobs"])
async def test_asyncpg_rollback_leaves_no_row_and_no_wake_up(
    q: aioqueue.Queue, conn: asyncpg.Connection, listener: Listener, unique_key: str | None
) -> None:
    async with q.pool.acquire() as tx_conn:
        tr = tx_conn.transaction()
        await tr.start()
        await tx_conn.execute("CREATE TEMP TABLE business (v int) ON COMMIT DROP")
        await tx_conn.execute("INSERT INTO business VALUES (1)")
        out = await q.enqueue("tx", unique_key=unique_key, tx=tx_conn)
        many = await q.enqueue_many([{"kind": "tx2"}, {"kind": "tx3", "delay": 60}], tx=tx_conn)
        await tr.rollback()
    for job_id in (out.id, *(o.id for o in many)):
        assert not await exists(q, job_id)
    assert await conn.fetchval(f'SELECT count(*) FROM "{q.config.schema}".jobs') == 0
    # a later committed enqueue is delivered; nothing from the rolled-back one came before it
    later = await q.enqueue("later", delay=3600)
    await listener.wait_for(lambda got: any(p.startswith("t:") for p in got))
    assert [p for p in listener.payloads if not p.startswith("t:")] == []
    # the key held by the rolled-back job is free
    if unique_key is not None:
        again = await q.enqueue("tx", unique_key=unique_key)
        assert not again.deduped
    assert await exists(q, later.id)


async def test_asyncpg_savepoint_rollback_drops_only_that_job(
    q: aioqueue.Queue, listener: Listener, conn: asyncpg.Connection
) -> None:
    async with q.pool.acquire() as tx_conn, tx_conn.transaction():
        kept = await q.enqueue("kept", tx=tx_conn)
        savepoint = tx_conn.transaction()
        await savepoint.start()
        await q.enqueue("gone", tx=tx_conn)
        await savepoint.rollback()
        kept_too = await q.enqueue_many([{"kind": "kept", "unique_key": "u"}], tx=tx_conn)
    assert [j.kind for j in await q.list_jobs()] == ["kept", "kept"]
    assert {kept.id, kept_too[0].id} == {j.id for j in await q.list_jobs()}
    # PostgreSQL folds the identical wake-ups of one transaction into one
    assert await listener.probe(conn) == [""]


async def test_dedupe_inside_one_transaction_sees_its_own_uncommitted_job(
    q: aioqueue.Queue,
) -> None:
    async with q.pool.acquire() as tx_conn, tx_conn.transaction():
        first = await q.enqueue("k", unique_key="u", tx=tx_conn)
        again = await q.enqueue("k", unique_key="u", tx=tx_conn)
        assert again == aioqueue.EnqueueResult(first.id, True)
    assert again.id == (await q.get_job(first.id)).id


async def test_asyncpg_connection_outside_a_transaction_is_refused(
    q: aioqueue.Queue, conn: asyncpg.Connection
) -> None:
    async with q.pool.acquire() as idle:
        async with StatementLog(idle) as log:
            with pytest.raises(aioqueue.ConfigurationError, match="not inside a transaction"):
                await q.enqueue("tx", tx=idle)
            with pytest.raises(aioqueue.ConfigurationError, match="not inside a transaction"):
                await q.enqueue("tx", unique_key="u", tx=idle)
            with pytest.raises(aioqueue.ConfigurationError, match="not inside a transaction"):
                await q.enqueue_many([{"kind": "tx"}], tx=idle)
        assert log.queries == []  # refused before any statement ran on it
        assert not idle.is_in_transaction()
    assert await conn.fetchval(f'SELECT count(*) FROM "{q.config.schema}".jobs') == 0


async def test_tx_of_another_type_is_refused(q: aioqueue.Queue) -> None:
    for bad in (q.pool, object(), "conn"):
        with pytest.raises(aioqueue.ConfigurationError, match="tx= must be"):
            await q.enqueue("tx", tx=bad)


async def test_enqueue_many_in_a_transaction_is_one_statement(
    q: aioqueue.Queue, listener: Listener, conn: asyncpg.Connection
) -> None:
    async with q.pool.acquire() as tx_conn:
        async with tx_conn.transaction():
            async with StatementLog(tx_conn) as log:
                outs = await q.enqueue_many(
                    [{"kind": "m", "payload": i} for i in range(100)], tx=tx_conn
                )
            assert len(log.queries) == 1
            assert await listener.probe(conn) == []
        await listener.wait_for(lambda got: got == [""])
    assert [(await q.get_job(o.id)).payload for o in outs[:3]] == [0, 1, 2]


# -- SQLAlchemy -------------------------------------------------------------------------------


@pytest.mark.parametrize("unique_key", [None, "k"], ids=["insert", "add_jobs"])
async def test_sqlalchemy_async_connection_commit_and_rollback(
    q: aioqueue.Queue,
    conn: asyncpg.Connection,
    engine: Any,
    listener: Listener,
    unique_key: str | None,
) -> None:
    from sqlalchemy import text

    async with engine.connect() as sa_conn:
        async with sa_conn.begin():
            await sa_conn.execute(text("SELECT 1"))
            driver = (await sa_conn.get_raw_connection()).driver_connection
            async with StatementLog(driver) as log:
                kept = await q.enqueue("sa", {"n": 1}, unique_key=unique_key, tx=sa_conn)
            assert len(log.queries) == 1 and not log.transaction_control()
            assert driver.is_in_transaction()
            assert not await exists(q, kept.id)
            assert await listener.probe(conn) == []
        assert (await q.get_job(kept.id)).payload == {"n": 1}
        await listener.wait_for(lambda got: got == [""])
        listener.payloads.clear()

        async with sa_conn.begin() as sa_tx:  # nothing executed yet in this transaction
            gone = await q.enqueue("sa", {"n": 2}, tx=sa_conn)
            gone_many = await q.enqueue_many([{"kind": "sa", "unique_key": "x"}], tx=sa_conn)
            await sa_tx.rollback()
    assert not await exists(q, gone.id)
    assert not await exists(q, gone_many[0].id)
    assert await listener.probe(conn) == []


async def test_sqlalchemy_session_commit_and_rollback(
    q: aioqueue.Queue, conn: asyncpg.Connection, engine: Any, listener: Listener
) -> None:
    from sqlalchemy import text
    from sqlalchemy.ext.asyncio import AsyncSession

    async with AsyncSession(engine) as session:
        async with session.begin():
            await session.execute(text("CREATE TEMP TABLE orders (id int)"))
            await session.execute(text("INSERT INTO orders VALUES (7)"))
            kept = await q.enqueue("sa", {"order": 7}, tx=session)
            assert await listener.probe(conn) == []
        await listener.wait_for(lambda got: got == [""])
        listener.payloads.clear()
        assert (await q.get_job(kept.id)).payload == {"order": 7}

        await session.begin()
        gone = await q.enqueue("sa", {"order": 8}, unique_key="o8", tx=session)
        await session.rollback()
        assert not session.in_transaction()
    assert not await exists(q, gone.id)
    assert await listener.probe(conn) == []


async def test_sqlalchemy_outside_a_transaction_is_refused_and_none_is_begun(
    q: aioqueue.Queue, conn: asyncpg.Connection, engine: Any
) -> None:
    from sqlalchemy.ext.asyncio import AsyncSession

    async with AsyncSession(engine) as session:
        with pytest.raises(aioqueue.ConfigurationError, match="not inside a transaction"):
            await q.enqueue("sa", tx=session)
        assert not session.in_transaction()  # aioqueue did not autobegin one
    async with engine.connect() as sa_conn:
        with pytest.raises(aioqueue.ConfigurationError, match="not inside a transaction"):
            await q.enqueue("sa", tx=sa_conn)
        assert not sa_conn.in_transaction()
    autocommit = engine.execution_options(isolation_level="AUTOCOMMIT")
    async with autocommit.connect() as sa_conn, sa_conn.begin():
        with pytest.raises(aioqueue.ConfigurationError, match="autocommit"):
            await q.enqueue("sa", tx=sa_conn)
    assert await conn.fetchval(f'SELECT count(*) FROM "{q.config.schema}".jobs') == 0
