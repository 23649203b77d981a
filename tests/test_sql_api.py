"""The SQL surface: add_job / add_jobs from plain SQL and triggers, and the documented
SECURITY DEFINER wrapper for low-privilege roles."""

from __future__ import annotations

import secrets
from pathlib import Path

import asyncpg
import pytest

import aioqueue

pytestmark = pytest.mark.anyio
WRAPPER = Path(__file__).resolve().parent.parent / "examples" / "sql_security_definer.sql"


async def test_add_job_named_parameters_and_dedupe(
    q: aioqueue.Queue, conn: asyncpg.Connection
) -> None:
    s = q.config.schema
    first = await conn.fetchval(
        f"""SELECT "{s}".add_job('mail', '{{"to": "a"}}', unique_key := 'k', priority := 3,
                                 run_at := now() + interval '1 hour', flags := ARRAY['f1'])"""
    )
    same = await conn.fetchval(f"""SELECT "{s}".add_job('mail', unique_key := 'k')""")
    assert same == first
    job = await q.get_job(first)
    assert job.state is aioqueue.JobState.SCHEDULED
    assert (job.priority, job.flags, job.payload) == (3, ["f1"], {"to": "a"})
    replaced = await conn.fetchval(
        f"""SELECT "{s}".add_job('mail', '{{"to": "b"}}', unique_key := 'k',
                                 on_conflict := 'replace')"""
    )
    assert replaced == first
    assert (await q.get_job(first)).payload == {"to": "b"}
    rows = await conn.fetch(
        f"""SELECT * FROM "{s}".add_jobs('[{{"kind": "a", "payload": {{"i": 1}}}},
                                           {{"kind": "b", "delay": 5}},
                                           {{"kind": "mail", "unique_key": "k"}}]')"""
    )
    assert [(r["ord"], r["deduped"]) for r in rows] == [(1, False), (2, False), (3, True)]
    assert rows[2]["id"] == first


async def test_bad_specs_from_sql_name_the_problem(
    q: aioqueue.Queue, conn: asyncpg.Connection
) -> None:
    s = q.config.schema
    with pytest.raises(asyncpg.PostgresError, match="spec 0 is not a JSON object with a kind"):
        await conn.fetch(f"""SELECT * FROM "{s}".add_jobs('[{{"payload": 1}}]')""")
    with pytest.raises(asyncpg.PostgresError, match="unknown on_conflict"):
        await conn.fetchval(f"""SELECT "{s}".add_job('x', on_conflict := 'merge')""")
    with pytest.raises(asyncpg.CheckViolationError, match="jobs_kind_length"):
        await conn.fetchval(f"""SELECT "{s}".add_job(repeat('k', 200))""")


async def test_trigger_enqueues_one_job_per_row_and_one_notification_per_call(
    q: aioqueue.Queue, conn: asyncpg.Connection
) -> None:
    s = q.config.schema
    table = f"orders_{secrets.token_hex(3)}"
    await conn.execute(
        f"""
        CREATE TABLE {table} (id int PRIMARY KEY, total int);
        CREATE FUNCTION {table}_created() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
            PERFORM "{s}".add_job('order.created', jsonb_build_object('id', NEW.id));
            RETURN NEW;
        END $$;
        CREATE TRIGGER {table}_created AFTER INSERT ON {table}
            FOR EACH ROW EXECUTE FUNCTION {table}_created();
        """
    )
    got: list[str] = []
    listener = await asyncpg.connect(q.dsn)
    await listener.add_listener(q.config.channel, lambda *a: got.append(a[3]))
    try:
        await conn.execute(f"INSERT INTO {table} SELECT g, g * 10 FROM generate_series(1, 3) g")
        await conn.fetchval(f"""SELECT "{s}".add_job('probe')""")
        await listener.fetchval("SELECT 1")  # let pending notifications arrive
        jobs = await q.list_jobs(kind="order.created")
        assert sorted(j.payload["id"] for j in jobs) == [1, 2, 3]
        # PostgreSQL folds identical notifications of one transaction into one: the 3-row
        # INSERT wakes workers once, the probe once
        assert got.count("") == 2
    finally:
        await listener.close()
        await conn.execute(f"DROP TABLE {table} CASCADE")


async def test_security_definer_wrapper_for_a_low_privilege_role(
    q: aioqueue.Queue, conn: asyncpg.Connection
) -> None:
    s = q.config.schema
    role = f"app_user_{secrets.token_hex(3)}"
    wrapper_schema = f"app_jobs_{secrets.token_hex(3)}"
    password = secrets.token_hex(8)
    sql = (
        WRAPPER.read_text()
        .replace("aioqueue.add_job", f'"{s}".add_job')
        .replace("app_jobs", wrapper_schema)
        .replace("app_user", role)
    )
    await conn.execute(f"CREATE ROLE {role} LOGIN PASSWORD '{password}'")
    try:
        await conn.execute(sql)
        low = await asyncpg.connect(q.dsn, user=role, password=password)
        try:
            job_id = await low.fetchval(
                f"SELECT {wrapper_schema}.enqueue('public.welcome', '{{\"u\": 1}}')"
            )
            assert (await q.get_job(job_id)).payload == {"u": 1}
            with pytest.raises(asyncpg.InsufficientPrivilegeError):
                await low.fetchval(f"SELECT {wrapper_schema}.enqueue('admin.delete_all')")
            with pytest.raises(asyncpg.InsufficientPrivilegeError):
                await low.fetch(f'SELECT * FROM "{s}".jobs')
            with pytest.raises(asyncpg.InsufficientPrivilegeError):
                await low.fetchval(f"""SELECT "{s}".add_job('x')""")
            with pytest.raises(asyncpg.InsufficientPrivilegeError):
                await low.fetch(f"""SELECT * FROM "{s}".add_jobs('[]')""")
        finally:
            await low.close()
    finally:
        await conn.execute(f"DROP SCHEMA IF EXISTS {wrapper_schema} CASCADE")
        await conn.execute(f"DROP OWNED BY {role}; DROP ROLE {role}")
