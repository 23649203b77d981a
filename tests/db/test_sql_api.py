"""The SQL surface (SPEC "SQL surface", RELIABILITY S3): <schema>.add_job / add_jobs from plain
SQL and from triggers behave like the Python API, and the documented SECURITY DEFINER wrapper
lets a low-privilege role enqueue and nothing more."""

from __future__ import annotations

import datetime as dt
import json
import secrets
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import asyncpg
import pytest

import aioqueue
from aioqueue import JobState
from tests.support.notifications import Listener
from tests.support.roles import Roles, wrapper_sql

pytestmark = pytest.mark.anyio
MODES = ["ignore", "replace", "preserve_run_at", "unsafe_dedupe", "supersede"]


@pytest.fixture
async def listener(q: aioqueue.Queue) -> AsyncIterator[Listener]:
    assert q.dsn is not None
    got = Listener(q.config.channel)
    c = await asyncpg.connect(q.dsn)
    await c.add_listener(q.config.channel, got)
    try:
        yield got
    finally:
        await c.close()


# -- add_job / add_jobs from plain SQL ---------------------------------------------------------


async def test_add_job_with_named_parameters(q: aioqueue.Queue, conn: asyncpg.Connection) -> None:
    s = q.config.schema
    job_id = await conn.fetchval(
        f"""SELECT "{s}".add_job('mail', '{{"to": "a"}}', run_at := now() + interval '1 hour',
                                 priority := 3, flags := ARRAY['f1', 'f2'], max_attempts := 4,
                                 queue_name := 'user:1', unique_key := 'k')"""
    )
    job = await q.get_job(job_id)
    assert (job.kind, job.payload, job.state) == ("mail", {"to": "a"}, JobState.SCHEDULED)
    assert job.run_at == job.created_at + dt.timedelta(hours=1)  # one transaction's now()
    assert (job.priority, job.flags, job.max_attempts, job.queue_name, job.unique_key) == (
        3,
        ["f1", "f2"],
        4,
        "user:1",
        "k",
    )
    # only the kind is required; the defaults are the Python API's
    bare = await q.get_job(await conn.fetchval(f"SELECT \"{s}\".add_job('bare')"))
    py = await q.get_job((await q.enqueue("bare")).id)
    for field in ("payload", "state", "priority", "max_attempts", "queue_name", "flags"):
        assert getattr(bare, field) == getattr(py, field), field
    delayed = await q.get_job(await conn.fetchval(f"SELECT \"{s}\".add_job('later', delay := 90)"))
    assert delayed.state is JobState.SCHEDULED
    assert 89 <= (delayed.run_at - delayed.created_at).total_seconds() <= 91


async def test_add_jobs_from_plain_sql_returns_outcomes_in_input_order(
    q: aioqueue.Queue, conn: asyncpg.Connection
) -> None:
    s = q.config.schema
    first = await q.enqueue("mail", unique_key="k")
    rows = await conn.fetch(
        f"""SELECT * FROM "{s}".add_jobs('[{{"kind": "a", "payload": {{"i": 1}}}},
                                           {{"kind": "b", "delay": 5}},
                                           {{"kind": "mail", "unique_key": "k"}},
                                           {{"kind": "mail", "unique_key": "k2"}},
                                           {{"kind": "mail", "unique_key": "k2"}}]')"""
    )
    assert [(r["ord"], r["deduped"]) for r in rows] == [
        (1, False),
        (2, False),
        (3, True),
        (4, False),
        (5, True),
    ]
    assert rows[2]["id"] == first.id
    assert rows[4]["id"] == rows[3]["id"]
    assert (await q.get_job(rows[0]["id"])).payload == {"i": 1}
    assert (await q.get_job(rows[1]["id"])).state is JobState.SCHEDULED
    assert await conn.fetch(f"""SELECT * FROM "{s}".add_jobs('[]')""") == []


async def test_bad_specs_from_sql_are_refused(q: aioqueue.Queue, conn: asyncpg.Connection) -> None:
    s = q.config.schema
    with pytest.raises(asyncpg.PostgresError, match="spec 1 is not a JSON object with a kind"):
        await conn.fetch(f"""SELECT * FROM "{s}".add_jobs('[{{"kind": "a"}}, {{"payload": 1}}]')""")
    with pytest.raises(asyncpg.PostgresError, match="must be a JSON array"):
        await conn.fetch(f"""SELECT * FROM "{s}".add_jobs('{{"kind": "a"}}')""")
    with pytest.raises(asyncpg.PostgresError, match="unknown on_conflict"):
        await conn.fetchval(f"""SELECT "{s}".add_job('x', on_conflict := 'merge')""")
    with pytest.raises(asyncpg.PostgresError, match="not a JSON object with a kind"):
        await conn.fetchval(f"""SELECT "{s}".add_job(NULL)""")
    with pytest.raises(asyncpg.CheckViolationError, match="jobs_kind_length"):
        await conn.fetchval(f"""SELECT "{s}".add_job(repeat('k', 200))""")
    with pytest.raises(asyncpg.CheckViolationError, match="jobs_unique_key_length"):
        await conn.fetchval(f"""SELECT "{s}".add_job('k', unique_key := repeat('u', 600))""")
    with pytest.raises(asyncpg.NumericValueOutOfRangeError):
        await conn.fetchval(f"""SELECT "{s}".add_job('k', priority := 40000)""")
    with pytest.raises(asyncpg.CheckViolationError, match="jobs_max_attempts_positive"):
        await conn.fetchval(f"""SELECT "{s}".add_job('k', max_attempts := 0)""")
    assert await conn.fetchval(f'SELECT count(*) FROM "{s}".jobs') == 0


async def _scenario(
    enqueue: Callable[[Any, str], Awaitable[tuple[int, bool | None]]],
    set_state: Callable[[int, str], Awaitable[None]],
) -> list[tuple[int, bool | None]]:
    """One dedupe story; ids are renumbered by first appearance so runs compare."""
    seen: dict[int, int] = {}
    out = []
    a, dedup = await enqueue([1], "ignore")
    out.append((a, dedup))
    out.append(await enqueue([2], "MODE"))
    await set_state(out[-1][0], "running")
    out.append(await enqueue([3], "MODE"))
    await set_state(out[-1][0], "completed")
    out.append(await enqueue([4], "MODE"))
    out.append(await enqueue([5], "MODE"))
    return [(seen.setdefault(i, len(seen)), d) for i, d in out]


@pytest.mark.parametrize("mode", MODES)
async def test_sql_and_python_dedupe_alike(
    q: aioqueue.Queue, conn: asyncpg.Connection, mode: str
) -> None:
    s = q.config.schema

    async def set_state(job_id: int, state: str) -> None:
        await conn.execute(
            f'UPDATE "{s}".jobs SET state = $2::text::"{s}".job_state WHERE id = $1',
            job_id,
            state,
        )

    def runner(kind: str, via: str) -> Callable[[Any, str], Awaitable[tuple[int, bool | None]]]:
        async def enqueue(payload: Any, m: str) -> tuple[int, bool | None]:
            m = mode if m == "MODE" else m
            if via == "python":
                r = await q.enqueue(kind, payload, unique_key="u", on_conflict=m)  # type: ignore[arg-type]
                return r.id, r.deduped
            if via == "add_jobs":
                spec = [{"kind": kind, "payload": payload, "unique_key": "u", "on_conflict": m}]
                r2 = await conn.fetchrow(
                    f'SELECT id, deduped FROM "{s}".add_jobs($1::jsonb)', json.dumps(spec)
                )
                return r2["id"], r2["deduped"]
            job_id = await conn.fetchval(
                f"""SELECT "{s}".add_job($1, $2::jsonb, unique_key := 'u', on_conflict := $3)""",
                kind,
                json.dumps(payload),
                m,
            )
            return job_id, None

        return enqueue

    py = await _scenario(runner("py", "python"), set_state)
    many = await _scenario(runner("many", "add_jobs"), set_state)
    one = await _scenario(runner("one", "add_job"), set_state)
    assert many == py
    assert [i for i, _ in one] == [i for i, _ in py]
    payloads = {
        kind: sorted(
            json.dumps(json.loads(r["payload"]))
            for r in await conn.fetch(f'SELECT payload FROM "{s}".jobs WHERE kind = $1', kind)
        )
        for kind in ("py", "many", "one")
    }
    assert payloads["py"] == payloads["many"] == payloads["one"]


async def test_one_notification_per_call(
    q: aioqueue.Queue, conn: asyncpg.Connection, listener: Listener
) -> None:
    s = q.config.schema
    # due now and future jobs in one call: one wake-up for the due work only
    await conn.fetch(
        f"""SELECT * FROM "{s}".add_jobs('[{{"kind": "a"}}, {{"kind": "b", "delay": 60}},
                                           {{"kind": "c", "unique_key": "u"}}]')"""
    )
    assert await listener.drain(conn) == [""]
    # future jobs only: one hint carrying the earliest run_at (distinct payloads would not
    # be folded by PostgreSQL, so this really is one notification)
    rows = await conn.fetch(
        f"""SELECT * FROM "{s}".add_jobs('[{{"kind": "d", "delay": 300}},
                                           {{"kind": "d", "delay": 100}},
                                           {{"kind": "d", "delay": 200, "unique_key": "x"}}]')"""
    )
    got = await listener.drain(conn)
    assert len(got) == 1 and got[0].startswith("t:")
    earliest = await conn.fetchval(
        f'SELECT min(run_at) FROM "{s}".jobs WHERE id = ANY($1::bigint[])', [r["id"] for r in rows]
    )
    assert float(got[0][2:]) == pytest.approx(earliest.timestamp(), abs=1e-3)
    # a deduped ignore wakes nobody
    await conn.fetchval(f"SELECT \"{s}\".add_job('c', unique_key := 'u')")
    assert await listener.drain(conn) == []


# -- triggers ---------------------------------------------------------------------------------


@pytest.fixture
async def orders(conn: asyncpg.Connection) -> AsyncIterator[str]:
    table = f"orders_{secrets.token_hex(4)}"
    await conn.execute(f"CREATE TABLE {table} (id int PRIMARY KEY, customer text)")
    try:
        yield table
    finally:
        await conn.execute(f"DROP TABLE {table} CASCADE")
        await conn.execute(f"DROP FUNCTION IF EXISTS {table}_row(), {table}_stmt()")


async def test_row_trigger_enqueues_with_dedupe_and_one_wake_up_per_transaction(
    q: aioqueue.Queue, conn: asyncpg.Connection, listener: Listener, orders: str
) -> None:
    s = q.config.schema
    await conn.execute(
        f"""
        CREATE FUNCTION {orders}_row() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
            PERFORM "{s}".add_job('order.created', jsonb_build_object('id', NEW.id),
                                  unique_key := NEW.customer);
            RETURN NEW;
        END $$;
        CREATE TRIGGER {orders}_row AFTER INSERT ON {orders}
            FOR EACH ROW EXECUTE FUNCTION {orders}_row();
        """
    )
    await conn.execute(
        f"INSERT INTO {orders} VALUES (1, 'ann'), (2, 'bob'), (3, 'ann'), (4, NULL), (5, NULL)"
    )
    jobs = await q.list_jobs(kind="order.created")
    # ann's second order is deduped onto her first (ignore); keyless rows never dedupe
    assert sorted(j.payload["id"] for j in jobs) == [1, 2, 4, 5]
    assert await listener.drain(conn) == [""]  # identical wake-ups fold into one per commit
    # the same through the Python API gives the same dedupe outcome
    assert (await q.enqueue("order.created", {"id": 6}, unique_key="ann")).deduped
    # rolled back: no job, no wake-up
    count_10 = f"SELECT count(*) FROM \"{s}\".jobs WHERE payload->>'id' = '10'"
    tr = conn.transaction()
    await tr.start()
    await conn.execute(f"INSERT INTO {orders} VALUES (10, 'cy')")
    assert await conn.fetchval(count_10) == 1
    await tr.rollback()
    assert await conn.fetchval(count_10) == 0
    assert await listener.drain(conn) == []


async def test_statement_trigger_enqueues_a_batch_in_one_add_jobs_call(
    q: aioqueue.Queue, conn: asyncpg.Connection, listener: Listener, orders: str
) -> None:
    s = q.config.schema
    await conn.execute(
        f"""
        CREATE FUNCTION {orders}_stmt() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
            PERFORM "{s}".add_jobs(jsonb_agg(jsonb_build_object(
                'kind', 'order.imported', 'payload', jsonb_build_object('id', n.id),
                'delay', n.id * 10) ORDER BY n.id))
            FROM new_rows AS n;
            RETURN NULL;
        END $$;
        CREATE TRIGGER {orders}_stmt AFTER INSERT ON {orders}
            REFERENCING NEW TABLE AS new_rows
            FOR EACH STATEMENT EXECUTE FUNCTION {orders}_stmt();
        """
    )
    await conn.execute(f"INSERT INTO {orders} SELECT g, 'c' || g FROM generate_series(1, 25) g")
    jobs = await q.list_jobs(kind="order.imported", limit=100)
    assert sorted(j.payload["id"] for j in jobs) == list(range(1, 26))
    assert all(j.state is JobState.SCHEDULED for j in jobs)
    got = await listener.drain(conn)
    assert len(got) == 1 and got[0].startswith("t:")  # one call, one notification


# -- SECURITY DEFINER wrapper and least privilege ----------------------------------------------


async def test_security_definer_wrapper_for_a_low_privilege_role(
    q: aioqueue.Queue, conn: asyncpg.Connection, roles: Roles
) -> None:
    s = q.config.schema
    assert q.dsn is not None
    producer = await roles.create("aq_producer")
    lowpriv = await roles.create("app_lowpriv")
    wrap = f"app_jobs_{secrets.token_hex(4)}"
    await conn.execute(wrapper_sql(s, wrap, producer))
    try:
        # the lowpriv role may even be granted SELECT: row-level security shows it nothing
        await conn.execute(f'GRANT USAGE ON SCHEMA "{s}" TO {lowpriv}')
        await conn.execute(f'GRANT SELECT ON "{s}".jobs TO {lowpriv}')
        await q.enqueue("secret.kind", {"token": "s3cret"})

        low = await asyncpg.connect(q.dsn, user=producer, password=roles.password)
        try:
            job_id = await low.fetchval(
                f"SELECT {wrap}.app_enqueue('public.welcome', '{{\"u\": 1}}')"
            )
            job = await q.get_job(job_id)
            assert (job.kind, job.payload) == ("public.welcome", {"u": 1})
            # dedupe through the wrapper
            k1 = await low.fetchval(f"SELECT {wrap}.app_enqueue('public.x', unique_key := 'k')")
            k2 = await low.fetchval(f"SELECT {wrap}.app_enqueue('public.x', unique_key := 'k')")
            assert k1 == k2
            # the wrapper's own access check
            with pytest.raises(asyncpg.InsufficientPrivilegeError, match="may not be enqueued"):
                await low.fetchval(f"SELECT {wrap}.app_enqueue('admin.delete_all')")
            # and nothing else: no table access, no direct add_job/add_jobs
            for sql in (
                f'SELECT * FROM "{s}".jobs',
                f"""UPDATE "{s}".jobs SET priority = 1""",
                f"""SELECT "{s}".add_job('public.x')""",
                f"""SELECT * FROM "{s}".add_jobs('[{{"kind": "public.x"}}]')""",
            ):
                with pytest.raises(asyncpg.InsufficientPrivilegeError):
                    await low.fetch(sql)
        finally:
            await low.close()

        other = await asyncpg.connect(q.dsn, user=lowpriv, password=roles.password)
        try:
            assert await other.fetchval(f'SELECT count(*) FROM "{s}".jobs') == 0  # RLS
            for sql in (
                f"SELECT {wrap}.app_enqueue('public.x')",  # not granted to this role
                f"""SELECT "{s}".add_job('public.x')""",
                f"""SELECT * FROM "{s}".add_jobs('[]')""",
            ):
                with pytest.raises(asyncpg.InsufficientPrivilegeError):
                    await other.fetch(sql)
        finally:
            await other.close()
        assert await conn.fetchval(f'SELECT count(*) FROM "{s}".jobs') == 3
    finally:
        await conn.execute(f"DROP SCHEMA IF EXISTS {wrap} CASCADE")


async def test_wrapper_cannot_be_hijacked_through_the_callers_search_path(
    q: aioqueue.Queue, conn: asyncpg.Connection, roles: Roles
) -> None:
    """The caller shadows NOT LIKE (the wrapper's access check) with an operator of its own:
    a copy of the wrapper without the pinned search_path falls for it, the documented one
    does not."""
    s = q.config.schema
    assert q.dsn is not None
    producer = await roles.create("aq_producer")
    wrap = f"app_jobs_{secrets.token_hex(4)}"
    sql = wrapper_sql(s, wrap, producer)
    unpinned = (
        sql.replace("CREATE SCHEMA IF NOT EXISTS", "-- ")
        .replace("app_enqueue", "unpinned_enqueue")
        .replace("SET search_path = pg_catalog, pg_temp", "")
    )
    await conn.execute(sql)
    await conn.execute(unpinned)
    evil = f"evil_{secrets.token_hex(4)}"
    await conn.execute(f"CREATE SCHEMA {evil} AUTHORIZATION {producer}")
    try:
        low = await asyncpg.connect(q.dsn, user=producer, password=roles.password)
        try:
            await low.execute(
                f"""
                CREATE FUNCTION {evil}.never(text, text) RETURNS boolean
                    LANGUAGE sql IMMUTABLE AS 'SELECT false';
                CREATE OPERATOR {evil}.!~~ (LEFTARG = text, RIGHTARG = text,
                                            FUNCTION = {evil}.never);
                SET search_path = {evil}, pg_catalog;
                """
            )
            hijacked = await low.fetchval(f"SELECT {wrap}.unpinned_enqueue('admin.drop')")
            assert (await q.get_job(hijacked)).kind == "admin.drop"  # the attack is real
            with pytest.raises(asyncpg.InsufficientPrivilegeError, match="may not be enqueued"):
                await low.fetchval(f"SELECT {wrap}.app_enqueue('admin.drop')")
        finally:
            await low.close()
    finally:
        await conn.execute(f"DROP SCHEMA IF EXISTS {wrap} CASCADE")


async def test_add_job_and_add_jobs_are_owner_only(
    q: aioqueue.Queue, conn: asyncpg.Connection
) -> None:
    """EXECUTE is revoked from PUBLIC, and none is SECURITY DEFINER; all pin search_path
    (add_job and add_jobs each take jsonb, json or text; retry_job re-runs a job)."""
    rows = await conn.fetch(
        """SELECT p.proname, p.prosecdef, p.proconfig,
                  has_function_privilege('public', p.oid, 'EXECUTE') AS public_exec
           FROM pg_proc p WHERE p.pronamespace = $1::regnamespace
             AND p.proname IN ('add_job', 'add_jobs', 'retry_job')""",
        q.config.schema,
    )
    assert sorted(r["proname"] for r in rows) == [
        *["add_job"] * 4,  # jsonb, json, text, and with depends_on (migration 0009)
        *["add_jobs"] * 3,
        "retry_job",
    ]
    for r in rows:
        assert r["public_exec"] is False, r["proname"]
        assert r["prosecdef"] is False, r["proname"]
        assert "search_path=pg_catalog, pg_temp" in r["proconfig"], r["proname"]
