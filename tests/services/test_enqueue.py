"""Producer API: every on_conflict mode, concurrency, enqueue_many, tx=, input limits."""

from __future__ import annotations

import asyncio
import datetime as dt
import math
from typing import Any

import asyncpg
import pytest

import aioqueue

pytestmark = pytest.mark.anyio


async def _set_state(conn: asyncpg.Connection, q: aioqueue.Queue, job_id: int, state: str) -> None:
    await conn.execute(
        f'UPDATE "{q.config.schema}".jobs SET state = $2::text::"{q.config.schema}".job_state '
        "WHERE id = $1",
        job_id,
        state,
    )


async def _count(conn: asyncpg.Connection, q: aioqueue.Queue) -> int:
    return int(await conn.fetchval(f'SELECT count(*) FROM "{q.config.schema}".jobs'))


# -- on_conflict modes ------------------------------------------------------------------------


async def test_ignore_returns_existing_job_until_it_finishes(
    q: aioqueue.Queue, conn: asyncpg.Connection
) -> None:
    first = await q.enqueue("mail", {"n": 1}, unique_key="k")
    again = await q.enqueue("mail", {"n": 2}, unique_key="k")
    assert again == aioqueue.EnqueueResult(first.id, True)
    assert (await q.get_job(first.id)).payload == {"n": 1}
    other_kind = await q.enqueue("sms", {"n": 3}, unique_key="k")  # per kind, not global
    assert not other_kind.deduped
    for state in ("completed", "cancelled", "failed"):
        await _set_state(conn, q, first.id, state)
        fresh = await q.enqueue("mail", {"n": 4}, unique_key="k")
        assert not fresh.deduped, state  # the key is free once the job is finished
        await _set_state(conn, q, fresh.id, state)


async def test_replace_updates_waiting_job_and_appends_lists(q: aioqueue.Queue) -> None:
    first = await q.enqueue(
        "digest", [1], unique_key="u", on_conflict="replace", delay=60, priority=1
    )
    again = await q.enqueue("digest", [2, 3], unique_key="u", on_conflict="replace", priority=7)
    assert again == aioqueue.EnqueueResult(first.id, True)
    job = await q.get_job(first.id)
    assert job.payload == [1, 2, 3]
    assert job.priority == 7
    assert job.state is aioqueue.JobState.PENDING  # run_at replaced: due now
    await q.enqueue("digest", {"x": 1}, unique_key="u", on_conflict="replace")
    assert (await q.get_job(first.id)).payload == {"x": 1}  # not both lists: replaced


async def test_preserve_run_at_keeps_the_schedule(q: aioqueue.Queue) -> None:
    first = await q.enqueue("r", {"v": 1}, unique_key="u", delay=3600)
    before = (await q.get_job(first.id)).run_at
    again = await q.enqueue("r", {"v": 2}, unique_key="u", on_conflict="preserve_run_at")
    assert again.id == first.id
    job = await q.get_job(first.id)
    assert job.run_at == before
    assert job.payload == {"v": 2}
    assert job.state is aioqueue.JobState.SCHEDULED


async def test_replace_of_running_job_releases_key_and_inserts(
    q: aioqueue.Queue, conn: asyncpg.Connection
) -> None:
    first = await q.enqueue("r", {"v": 1}, unique_key="u", on_conflict="replace")
    await _set_state(conn, q, first.id, "running")
    again = await q.enqueue("r", {"v": 2}, unique_key="u", on_conflict="replace")
    assert again.id != first.id
    assert not again.deduped
    assert (await q.get_job(first.id)).unique_key is None
    assert (await q.get_job(again.id)).unique_key == "u"


async def test_unsafe_dedupe_looks_at_every_kept_state(
    q: aioqueue.Queue, conn: asyncpg.Connection
) -> None:
    first = await q.enqueue("once", unique_key="u", on_conflict="unsafe_dedupe")
    await _set_state(conn, q, first.id, "failed")
    again = await q.enqueue("once", unique_key="u", on_conflict="unsafe_dedupe")
    assert again == aioqueue.EnqueueResult(first.id, True)
    ignored = await q.enqueue("once", unique_key="u")  # ignore mode: the key is free again
    assert not ignored.deduped
    # a completed job does not count (graphile-worker deletes it)
    await _set_state(conn, q, ignored.id, "completed")
    await _set_state(conn, q, first.id, "completed")
    fresh = await q.enqueue("once", unique_key="u", on_conflict="unsafe_dedupe")
    assert not fresh.deduped and fresh.id not in (first.id, ignored.id)


async def test_supersede_asks_running_job_to_stop(
    q: aioqueue.Queue, conn: asyncpg.Connection
) -> None:
    got: list[str] = []
    listener = await asyncpg.connect(q.dsn)
    await listener.add_listener(q.config.channel, lambda *a: got.append(a[3]))
    try:
        first = await q.enqueue("render", 1, unique_key="d", on_conflict="supersede")
        replaced = await q.enqueue("render", 2, unique_key="d", on_conflict="supersede")
        assert replaced == aioqueue.EnqueueResult(first.id, True)  # waiting: like replace
        await _set_state(conn, q, first.id, "running")
        new = await q.enqueue("render", 3, unique_key="d", on_conflict="supersede")
        assert new.id != first.id
        flag = await conn.fetchval(
            f'SELECT cancel_requested FROM "{q.config.schema}".jobs WHERE id = $1', first.id
        )
        assert flag is True
        probe = await q.enqueue("probe")  # notifications arrive in commit order
        await _wait_for(lambda: len(got) >= 4)
        assert f"c:{first.id}" in got
        assert probe.id
    finally:
        await listener.close()


async def test_max_delay_caps_debounce(q: aioqueue.Queue, conn: asyncpg.Connection) -> None:
    first = await q.enqueue(
        "d", [1], unique_key="u", on_conflict="replace", delay=60, max_delay=100
    )
    created = (await q.get_job(first.id)).created_at
    # pretend the first enqueue happened 90 s ago: the next replace may only push to +100 s
    await conn.execute(
        f"UPDATE \"{q.config.schema}\".jobs SET created_at = created_at - interval '90 seconds'"
    )
    await q.enqueue("d", [2], unique_key="u", on_conflict="replace", delay=60, max_delay=100)
    job = await q.get_job(first.id)
    ceiling = created - dt.timedelta(seconds=90) + dt.timedelta(seconds=100)
    assert abs((job.run_at - ceiling).total_seconds()) < 1
    assert job.payload == [1, 2]


@pytest.mark.parametrize(
    "mode", ["ignore", "replace", "preserve_run_at", "unsafe_dedupe", "supersede"]
)
async def test_fifty_concurrent_duplicates_give_one_job(dsn: str, schema: str, mode: Any) -> None:
    q = await aioqueue.Queue.connect(dsn, schema=schema, pool_max_size=25)
    try:
        outs = await asyncio.gather(
            *[q.enqueue("dup", {"i": i}, unique_key="same", on_conflict=mode) for i in range(50)]
        )
        ids = {o.id for o in outs}
        assert len(ids) == 1 and None not in ids
        assert sum(o.deduped for o in outs) == 49
        count = await q.pool.fetchval(f'SELECT count(*) FROM "{schema}".jobs')
        assert count == 1
    finally:
        await q.pool.execute(f'DROP SCHEMA "{schema}" CASCADE')
        await q.close()


async def test_enqueue_many_dedupes_within_one_call_in_order(q: aioqueue.Queue) -> None:
    outs = await q.enqueue_many(
        [
            {"kind": "a", "payload": 1, "unique_key": "x"},
            {"kind": "a", "payload": 2},
            {"kind": "a", "payload": 3, "unique_key": "x"},
            aioqueue.JobSpec(kind="b", payload=4, unique_key="x"),
            {"kind": "a", "payload": [5], "unique_key": "y", "on_conflict": "replace"},
            {"kind": "a", "payload": [6], "unique_key": "y", "on_conflict": "replace"},
        ]
    )
    assert [o.deduped for o in outs] == [False, False, True, False, False, True]
    assert outs[2].id == outs[0].id
    assert outs[5].id == outs[4].id
    assert (await q.get_job(outs[4].id)).payload == [5, 6]
    assert len({o.id for o in outs}) == 4


async def test_enqueue_many_of_ten_thousand_is_one_statement(q: aioqueue.Queue) -> None:
    calls: list[str] = []
    original = q.queries.jobs_insert_bare  # only {kind, payload}: the bare INSERT

    async def spy(db: Any, *, specs: str, **kw: Any) -> Any:
        calls.append(specs)
        return await original(db, specs=specs, **kw)

    q.queries.jobs_insert_bare = spy  # type: ignore[method-assign]
    outs = await q.enqueue_many([{"kind": "bulk", "payload": {"i": i}} for i in range(10_000)])
    assert len(calls) == 1
    assert len(outs) == 10_000
    ids = [o.id for o in outs]
    assert ids == sorted(ids)  # input order
    assert (await q.get_job(ids[1234])).payload == {"i": 1234}
    assert await q.enqueue_many([]) == []


# -- tx= ---------------------------------------------------------------------------------------


async def _wait_for(predicate: Any, timeout: float = 5) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not predicate():
        assert asyncio.get_running_loop().time() < deadline, "condition not met in time"
        await asyncio.sleep(0.01)


async def test_tx_with_asyncpg_commit_and_rollback(q: aioqueue.Queue) -> None:
    got: list[str] = []
    listener = await asyncpg.connect(q.dsn)
    await listener.add_listener(q.config.channel, lambda *a: got.append(a[3]))
    try:
        async with q.pool.acquire() as conn:
            tr = conn.transaction()
            await tr.start()
            rolled = await q.enqueue("tx", {"n": 1}, tx=conn)
            await tr.rollback()
            with pytest.raises(aioqueue.JobNotFound):
                await q.get_job(rolled.id)
            async with conn.transaction():
                kept = await q.enqueue("tx", {"n": 2}, tx=conn)
                with pytest.raises(aioqueue.JobNotFound):  # invisible until commit
                    await q.get_job(kept.id)
            assert (await q.get_job(kept.id)).payload == {"n": 2}
            await _wait_for(lambda: len(got) >= 1)
            assert got == [""]  # one wake-up: the committed one only
            with pytest.raises(aioqueue.ConfigurationError, match="not inside a transaction"):
                await q.enqueue("tx", tx=conn)
    finally:
        await listener.close()


async def test_tx_with_sqlalchemy_session_and_connection(q: aioqueue.Queue) -> None:
    from sqlalchemy import text
    from sqlalchemy.ext.asyncio import AsyncSession, create_async_engine

    assert q.dsn is not None
    engine = create_async_engine(
        "postgresql+asyncpg://", async_creator=lambda: asyncpg.connect(q.dsn)
    )
    try:
        async with AsyncSession(engine) as session:
            async with session.begin():
                await session.execute(text("SELECT 1"))
                kept = await q.enqueue("sa", {"n": 1}, tx=session)
            async with session.begin():
                gone = await q.enqueue("sa", {"n": 2}, tx=session)  # nothing executed before
                await session.rollback()
        async with engine.connect() as conn:
            async with conn.begin():
                via_conn = await q.enqueue("sa", {"n": 3}, tx=conn)
        assert (await q.get_job(kept.id)).payload == {"n": 1}
        assert (await q.get_job(via_conn.id)).payload == {"n": 3}
        with pytest.raises(aioqueue.JobNotFound):
            await q.get_job(gone.id)
        with pytest.raises(aioqueue.ConfigurationError):
            await q.enqueue("sa", tx=object())
    finally:
        await engine.dispose()


# -- input limits ------------------------------------------------------------------------------

BAD_INPUTS: list[tuple[dict[str, Any], type[Exception], str]] = [
    ({"payload": object()}, aioqueue.PayloadEncodeError, "payload at $"),
    ({"payload": {"a": [1, {"b": object()}]}}, TypeError, "$.a[1].b"),
    ({"payload": {"a": ["ok", "nul\x00"]}}, aioqueue.PayloadValueError, "$.a[1]"),
    ({"payload": {"k\x00": 1}}, ValueError, "NUL"),
    ({"payload": {"x": math.nan}}, aioqueue.PayloadValueError, "$.x"),
    ({"payload": [math.inf]}, ValueError, "$[0]"),
    ({"payload": "x" * (1024 * 1024)}, aioqueue.PayloadTooLarge, "over the limit"),
    ({"kind": ""}, aioqueue.InvalidJobError, "kind"),
    ({"kind": "k" * 129}, aioqueue.InvalidJobError, "kind"),
    ({"kind": "é" * 65}, aioqueue.InvalidJobError, "kind"),
    ({"queue_name": "q" * 129}, aioqueue.InvalidJobError, "queue_name"),
    ({"unique_key": "u" * 513}, aioqueue.InvalidJobError, "unique_key"),
    ({"unique_key": ""}, aioqueue.InvalidJobError, "unique_key"),
    ({"priority": 40000}, aioqueue.InvalidJobError, "priority"),
    ({"max_attempts": 0}, aioqueue.InvalidJobError, "max_attempts"),
    ({"run_at": dt.datetime(2030, 1, 1)}, aioqueue.InvalidJobError, "timezone-aware"),
    ({"delay": -1}, aioqueue.InvalidJobError, "delay"),
    ({"delay": 1, "run_at": dt.datetime(2030, 1, 1, tzinfo=dt.UTC)}, ValueError, "not both"),
    ({"flags": ["f"] * 33}, aioqueue.InvalidJobError, "flags"),
    ({"flags": ["f" * 129]}, aioqueue.InvalidJobError, "flags[0]"),
    ({"on_conflict": "merge"}, aioqueue.InvalidJobError, "on_conflict"),
]


@pytest.mark.parametrize(("fields", "error", "needle"), BAD_INPUTS)
async def test_bad_input_is_rejected_before_any_sql(
    q: aioqueue.Queue,
    conn: asyncpg.Connection,
    fields: dict[str, Any],
    error: type[Exception],
    needle: str,
) -> None:
    kwargs = {"kind": "k", "payload": {}, **fields}
    kind = kwargs.pop("kind")
    payload = kwargs.pop("payload")
    async with q.pool.acquire() as tx_conn, tx_conn.transaction():
        with pytest.raises(error, match=None) as info:
            await q.enqueue(kind, payload, tx=tx_conn, **kwargs)
        assert needle in str(info.value)
        assert await tx_conn.fetchval("SELECT 1") == 1  # the transaction is still usable
    with pytest.raises(error):
        await q.enqueue_many([{"kind": "fine"}, {"kind": kind, "payload": payload, **kwargs}])
    assert await _count(conn, q) == 0


async def test_limits_are_inclusive(q: aioqueue.Queue) -> None:
    await q.enqueue(
        "k" * 128,
        "x" * (1024 * 1024 - 10),
        unique_key="u" * 512,
        queue_name="é" * 64,
        priority=32767,
        flags=["f" * 128] * 32,
    )


async def test_default_call_writes_the_same_row_as_the_full_insert(
    q: aioqueue.Queue, conn: asyncpg.Connection
) -> None:
    """enqueue(kind, payload) takes a shorter statement (job_insert_now.sql); options given at
    their default values take jobs_insert_many.sql. Both rows must match column for column."""
    short = await q.enqueue("same", {"a": [1, "x"]})
    full = await q.enqueue("same", {"a": [1, "x"]}, priority=0, flags=[], delay=0)
    bare = await q.enqueue("same")  # no payload: {}
    rows = {
        r["id"]: dict(r)
        for r in await conn.fetch(
            f'SELECT *, run_at - created_at AS due_in FROM "{q.config.schema}".jobs'
        )
    }
    ignore = {"id", "run_at", "created_at"}
    assert {k: v for k, v in rows[short.id].items() if k not in ignore} == {
        k: v for k, v in rows[full.id].items() if k not in ignore
    }
    assert rows[short.id]["due_in"] == dt.timedelta(0)
    assert rows[short.id]["state"] == "pending"
    assert rows[bare.id]["payload"] == "{}"
    with pytest.raises(aioqueue.InvalidJobError, match="kind"):
        await q.enqueue("k" * 129)  # an unknown kind is checked on the short path too


async def test_invalid_spec_in_enqueue_many_names_its_index(
    q: aioqueue.Queue, conn: asyncpg.Connection
) -> None:
    with pytest.raises(aioqueue.InvalidJobError, match="job spec 2: priority"):
        await q.enqueue_many([{"kind": "a"}, {"kind": "b"}, {"kind": "c", "priority": 10**6}])
    with pytest.raises(aioqueue.InvalidJobError, match="job spec 1: colour"):
        await q.enqueue_many([{"kind": "a"}, {"kind": "b", "colour": "red"}])
    with pytest.raises(aioqueue.PayloadValueError, match=r"job spec 1: payload at \$.v"):
        await q.enqueue_many([{"kind": "a"}, {"kind": "b", "payload": {"v": math.nan}}])
    assert await _count(conn, q) == 0


@pytest.mark.parametrize(
    "name", ["public; DROP TABLE x", '"aq"', "aq-x", "a" * 49, "", "schéma", "Aq", "pg_x", "1aq"]
)
async def test_bad_schema_names_rejected_before_connecting(name: str) -> None:
    closed_port = "postgresql://u@127.0.0.1:1/db"
    with pytest.raises(aioqueue.ConfigurationError, match="invalid schema name"):
        await aioqueue.Queue.connect(closed_port, schema=name)
    with pytest.raises(aioqueue.ConfigurationError, match="invalid schema name"):
        aioqueue.Queue(None, schema=name)  # type: ignore[arg-type]


@pytest.mark.parametrize("name", ["aq", "aq_1", "_x", "a" * 48])
async def test_good_schema_names(dsn: str, name: str) -> None:
    q = await aioqueue.Queue.connect(dsn, schema=name)
    try:
        assert (await q.enqueue("k")).id >= 1
    finally:
        await q.pool.execute(f'DROP SCHEMA "{name}" CASCADE')
        await q.close()
