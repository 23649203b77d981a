"""Issue 17, the contract side: run_at's range holds for every writer (Python, add_job/add_jobs,
reschedule, plain INSERT/UPDATE), the SQL surface refuses what the Python API refuses, and a
retry is idempotent. Real PostgreSQL."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
from typing import Any

import anyio
import asyncpg
import pytest

import aioqueue
from aioqueue import InvalidJobError, JobState, config
from aioqueue._db.migrate import migrations
from aioqueue._db.queries import Queries, render
from aioqueue.config import MAX_DELAY_SECONDS
from tests.support.cli import aq

pytestmark = pytest.mark.anyio
UTC = dt.UTC
FAR = dt.timezone(dt.timedelta(hours=14))
WEST = dt.timezone(dt.timedelta(hours=-12))

OUT_OF_RANGE = [
    dt.datetime.min.replace(tzinfo=UTC),  # asyncpg would write it as -infinity
    dt.datetime.max.replace(tzinfo=UTC),  # ... and this as infinity
    dt.datetime.min.replace(tzinfo=FAR),
    dt.datetime.max.replace(tzinfo=WEST),
    dt.datetime(1969, 12, 31, 23, 59, 59, 999999, tzinfo=UTC),
    dt.datetime(1970, 1, 1, 13, 59, tzinfo=FAR),  # 1969-12-31 in UTC
    config.RUN_AT_MAX,
    dt.datetime(2999, 12, 31, 13, tzinfo=WEST),  # 3000-01-01 in UTC
]
SQL_OUT_OF_RANGE = [
    "-infinity",
    "infinity",
    "0001-01-01 00:00:00+00 BC",
    "4713-01-01 00:00:00+00 BC",
    "1969-12-31 23:59:59.999999+00",
    "3000-01-01 00:00:00+00",
    "294276-12-31 23:59:59+00",
]
IN_RANGE = [config.RUN_AT_MIN, dt.datetime(2999, 12, 31, 23, 59, 59, 999999, tzinfo=UTC)]


async def count(conn: asyncpg.Connection, q: aioqueue.Queue) -> int:
    return int(await conn.fetchval(f'SELECT count(*) FROM "{q.config.schema}".jobs'))


# -- run_at ------------------------------------------------------------------------------------


@pytest.mark.parametrize("run_at", OUT_OF_RANGE, ids=str)
async def test_python_api_refuses_run_at_out_of_range_before_sql(
    q: aioqueue.Queue, conn: asyncpg.Connection, run_at: dt.datetime
) -> None:
    waiting = await q.enqueue("k", delay=60)
    for call in (
        q.enqueue("k", run_at=run_at),
        q.enqueue("k", run_at=run_at, unique_key="u"),
        q.enqueue_many([{"kind": "k"}, {"kind": "k", "run_at": run_at}]),
        q.reschedule([waiting.id], run_at=run_at),
    ):
        with pytest.raises(InvalidJobError, match="run_at: must be from 1970-01-01") as err:
            await call
        assert err.value.field == "run_at"
    assert await count(conn, q) == 1
    assert (await q.get_job(waiting.id)).state is JobState.SCHEDULED


async def test_naive_datetime_min_and_max_are_refused(q: aioqueue.Queue) -> None:
    job = await q.enqueue("k")
    for value in (dt.datetime.min, dt.datetime.max):
        with pytest.raises(InvalidJobError, match="run_at: must be timezone-aware"):
            await q.enqueue("k", run_at=value)
        with pytest.raises(InvalidJobError, match="run_at: must be timezone-aware"):
            await q.reschedule([job.id], run_at=value)


@pytest.mark.parametrize("value", SQL_OUT_OF_RANGE)
async def test_the_database_refuses_run_at_out_of_range_from_every_sql_path(
    q: aioqueue.Queue, conn: asyncpg.Connection, value: str
) -> None:
    s = q.config.schema
    job = await q.enqueue("k", delay=60)
    for sql in (
        f"""SELECT "{s}".add_job('k', run_at := '{value}')""",
        f"""SELECT "{s}".add_job('k', unique_key := 'u', run_at := '{value}')""",
        f"""SELECT * FROM "{s}".add_jobs('[{{"kind": "k", "run_at": "{value}"}}]')""",
        f"""INSERT INTO "{s}".jobs (kind, run_at) VALUES ('k', '{value}')""",
        f"""UPDATE "{s}".jobs SET run_at = '{value}' WHERE id = {job.id}""",
    ):
        with pytest.raises(asyncpg.CheckViolationError, match="jobs_run_at_range"):
            await conn.execute(sql)
    assert await count(conn, q) == 1


@pytest.mark.parametrize(
    "value",
    [dt.datetime.min, dt.datetime.max, *OUT_OF_RANGE[:2], *OUT_OF_RANGE[4:]],
    ids=str,
)
async def test_reschedules_statement_refuses_run_at_out_of_range(
    q: aioqueue.Queue, conn: asyncpg.Connection, value: dt.datetime
) -> None:
    """Queue.reschedule's statement, given the value by a caller that skipped the Python check
    (asyncpg writes datetime.min/max as -infinity/infinity)."""
    job = await q.enqueue("k", delay=60)
    before = await q.get_job(job.id)
    with pytest.raises(asyncpg.CheckViolationError, match="jobs_run_at_range"):
        await q.queries.job_reschedule_many(
            conn, ids=[job.id], run_at=value, priority=None, attempts=None
        )
    assert await q.get_job(job.id) == before


@pytest.mark.parametrize("run_at", IN_RANGE, ids=str)
async def test_the_bounds_are_the_same_in_python_and_the_database(
    q: aioqueue.Queue, conn: asyncpg.Connection, run_at: dt.datetime
) -> None:
    """The edges of the range are stored by every path (Python checks exactly what the
    database's domain checks)."""
    s = q.config.schema
    ids = [
        (await q.enqueue("k", run_at=run_at)).id,
        (await q.enqueue("k", run_at=run_at, unique_key="u")).id,
        (await q.enqueue_many([{"kind": "k", "run_at": run_at}]))[0].id,
        await conn.fetchval(f"""SELECT "{s}".add_job('k', run_at := $1)""", run_at),
    ]
    other = await q.enqueue("k")
    assert await q.reschedule([other.id], run_at=run_at) == [other.id]
    for job_id in [*ids, other.id]:
        assert (await q.get_job(job_id)).run_at == run_at


async def test_migration_settles_rows_already_out_of_range(
    dsn: str, schema: str, conn: asyncpg.Connection
) -> None:
    """An install from before the range: its unrunnable rows fail with a clear error, every
    bad run_at is clamped, and the check is then valid for all rows."""
    ours = next(m for m in migrations() if m.name == "graphile_parity_and_limits")
    queries = Queries(schema)
    async with conn.transaction():
        await queries.migrations_bootstrap(conn)
        for m in migrations():
            if m.version >= ours.version:
                break
            await conn.execute(render(m.text, schema))
            await queries.migrations_record(
                conn, version=m.version, name=m.name, breaking=m.breaking
            )
    rows = {
        "neg": ("pending", "-infinity"),
        "pos": ("scheduled", "infinity"),
        "bc": ("running", "0044-03-15 00:00:00+00 BC"),
        "done": ("completed", "-infinity"),
        "fine": ("pending", "2026-01-01 00:00:00+00"),
    }
    ids = {}
    for kind, (state, run_at) in rows.items():
        ids[kind] = await conn.fetchval(
            f"""INSERT INTO "{schema}".jobs (kind, state, run_at, attempts, unique_key)
                VALUES ($1::text, $2::text::"{schema}".job_state, $3::text::timestamptz,
                        CASE WHEN $2 = 'running' THEN 1 ELSE 0 END, $1::text)
                RETURNING id""",
            kind,
            state,
            run_at,
        )
    q = await aioqueue.Queue.connect(dsn, schema=schema)
    try:
        jobs = {kind: await q.get_job(i) for kind, i in ids.items()}
        for kind in ("neg", "pos", "bc"):
            job = jobs[kind]
            assert job.state is JobState.FAILED, kind
            assert job.error is not None and job.error.type == "InvalidRunAt", kind
            assert job.finished_at is not None and job.locked_by is None
            assert config.RUN_AT_MIN <= job.run_at < config.RUN_AT_MAX
        assert jobs["done"].state is JobState.COMPLETED
        assert jobs["done"].run_at == config.RUN_AT_MIN
        assert jobs["fine"].state is JobState.PENDING
        assert jobs["fine"].run_at == dt.datetime(2026, 1, 1, tzinfo=UTC)
        valid = await conn.fetchval(
            """SELECT bool_and(c.convalidated) FROM pg_constraint c
               WHERE c.contypid = $1::regtype""",
            f'"{schema}".job_run_at',
        )
        assert valid is True
        # the failed keys are free again
        assert not (await q.enqueue("neg", unique_key="neg")).deduped
    finally:
        await q.pool.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
        await q.close()


# -- the same limits through SQL ---------------------------------------------------------------

# (add_job arguments, the Python enqueue keywords refusing the same value)
SAME_LIMITS: list[tuple[str, dict[str, Any]]] = [
    ("delay := -3600", {"delay": -3600}),
    ("delay := -0.001", {"delay": -0.001}),
    ("delay := 'NaN'", {"delay": float("nan")}),
    ("delay := 'Infinity'", {"delay": float("inf")}),
    (f"delay := {MAX_DELAY_SECONDS + 1}", {"delay": MAX_DELAY_SECONDS + 1}),
    ("delay := 5, run_at := now()", {"delay": 5, "run_at": dt.datetime.now(UTC)}),
    (
        "unique_key := 'u', on_conflict := 'replace', max_delay := -1",
        {"unique_key": "u", "on_conflict": "replace", "max_delay": -1},
    ),
    (
        "unique_key := 'u', on_conflict := 'replace', max_delay := 'Infinity'",
        {"unique_key": "u", "on_conflict": "replace", "max_delay": float("inf")},
    ),
    ("flags := ARRAY['']", {"flags": [""]}),
    (f"flags := ARRAY['{'f' * 129}']", {"flags": ["f" * 129]}),
    ("flags := ARRAY[NULL]", {"flags": [None]}),
    (
        "flags := (SELECT array_agg(i::text) FROM generate_series(1, 33) i)",
        {"flags": [str(i) for i in range(33)]},
    ),
    ("unique_key := ''", {"unique_key": ""}),
    (f"unique_key := '{'u' * 513}'", {"unique_key": "u" * 513}),
    (f"queue_name := '{'q' * 129}'", {"queue_name": "q" * 129}),
    ("queue_name := ''", {"queue_name": ""}),
    ("priority := 32768", {"priority": 32768}),
    ("priority := -32769", {"priority": -32769}),
    ("max_attempts := 0", {"max_attempts": 0}),
    ("on_conflict := 'bogus', unique_key := 'u'", {"on_conflict": "bogus", "unique_key": "u"}),
]


@pytest.mark.parametrize(("sql_args", "py_args"), SAME_LIMITS, ids=[a for a, _ in SAME_LIMITS])
async def test_sql_refuses_what_python_refuses(
    q: aioqueue.Queue, conn: asyncpg.Connection, sql_args: str, py_args: dict[str, Any]
) -> None:
    s = q.config.schema
    with pytest.raises(asyncpg.PostgresError):
        await conn.fetchval(f"""SELECT "{s}".add_job('k', {sql_args})""")
    with pytest.raises(asyncpg.PostgresError):
        await conn.fetchval(f"""SELECT "{s}".add_job('k', '{{}}'::json, {sql_args})""")
    with pytest.raises((InvalidJobError, ValueError)):
        await q.enqueue("k", **py_args)
    assert await count(conn, q) == 0


@pytest.mark.parametrize("kind", ["", "k" * 129])
async def test_sql_refuses_kinds_python_refuses(
    q: aioqueue.Queue, conn: asyncpg.Connection, kind: str
) -> None:
    with pytest.raises(asyncpg.CheckViolationError):
        await conn.fetchval(f'SELECT "{q.config.schema}".add_job($1)', kind)
    with pytest.raises(InvalidJobError):
        await q.enqueue(kind)


async def test_sql_delay_errors_name_the_spec_and_the_field(
    q: aioqueue.Queue, conn: asyncpg.Connection
) -> None:
    s = q.config.schema
    with pytest.raises(asyncpg.InvalidParameterValueError, match="spec 0: delay must be"):
        await conn.fetchval(f"""SELECT "{s}".add_job('k', delay := -3600)""")
    with pytest.raises(asyncpg.InvalidParameterValueError, match="spec 1: flags must be"):
        await conn.fetch(
            f"""SELECT * FROM "{s}".add_jobs('[{{"kind": "a"}}, {{"kind": "b", "flags": [1]}}]')"""
        )
    # the limits themselves are accepted by both
    at_max = await conn.fetchval(f'SELECT "{s}".add_job($1, delay := $2)', "k", MAX_DELAY_SECONDS)
    assert (await q.get_job(at_max)).state is JobState.SCHEDULED
    assert not (await q.enqueue("k", delay=MAX_DELAY_SECONDS)).deduped


# -- retry is idempotent -----------------------------------------------------------------------


async def _failed(q: aioqueue.Queue, conn: asyncpg.Connection, **kw: Any) -> int:
    job = await q.enqueue("k", {"n": 1}, **kw)
    await conn.execute(
        f"""UPDATE "{q.config.schema}".jobs SET state = 'failed', finished_at = now()
            WHERE id = $1""",
        job.id,
    )
    return job.id


async def test_retry_twice_returns_the_active_retry(
    q: aioqueue.Queue, conn: asyncpg.Connection
) -> None:
    failed = await _failed(q, conn)
    first = await q.retry(failed)
    assert not first.deduped
    again = await q.retry(failed)
    assert again == aioqueue.EnqueueResult(first.id, True)
    sql = await conn.fetchrow(f'SELECT * FROM "{q.config.schema}".retry_job($1)', failed)
    assert (sql["id"], sql["deduped"]) == (first.id, True)
    retry_job = await q.get_job(first.id)
    assert (retry_job.rescheduled_from, retry_job.payload) == (failed, {"n": 1})
    # once that retry has finished (failed too), a new retry of the job is a new job
    await conn.execute(
        f"""UPDATE "{q.config.schema}".jobs SET state = 'failed' WHERE id = $1""", first.id
    )
    third = await q.retry(failed)
    assert not third.deduped and third.id != first.id
    assert await count(conn, q) == 3


async def test_concurrent_retries_make_one_job(dsn: str, schema: str) -> None:
    q = await aioqueue.Queue.connect(dsn, schema=schema, pool_max_size=12)
    try:
        async with q.pool.acquire() as conn:
            keyless = await _failed(q, conn)  # type: ignore[arg-type]
            keyed = await _failed(q, conn, unique_key="u")  # type: ignore[arg-type]
        for failed in (keyless, keyed):
            outs = await asyncio.gather(*[q.retry(failed) for _ in range(10)])
            assert len({o.id for o in outs}) == 1, outs
            assert sum(not o.deduped for o in outs) == 1
        active = await q.pool.fetchval(
            f"""SELECT count(*) FROM "{schema}".jobs
                WHERE state IN ('pending', 'scheduled', 'running')"""
        )
        assert active == 2
    finally:
        await q.pool.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
        await q.close()


async def test_a_retry_that_races_a_committing_retry_returns_it(
    q: aioqueue.Queue, conn: asyncpg.Connection, dsn: str
) -> None:
    """The second retry waits on the lock the first one holds on the failed job's row, then
    returns the first one's retry: the database decides, not a check before the insert."""
    failed = await _failed(q, conn)
    other = await asyncpg.connect(dsn)
    try:
        tr = other.transaction()
        await tr.start()
        (mine,) = await other.fetch(f'SELECT * FROM "{q.config.schema}".retry_job($1)', failed)
        second = asyncio.ensure_future(q.retry(failed))
        with anyio.fail_after(10):
            # wait until the second retry is blocked on the first one's row (pg_locks)
            while not await conn.fetchval(  # noqa: ASYNC110
                "SELECT count(*) FROM pg_locks WHERE NOT granted AND locktype = 'transactionid'"
            ):
                await anyio.sleep(0.02)
        await tr.commit()
        with anyio.fail_after(10):
            out = await second
        assert out == aioqueue.EnqueueResult(mine["id"], True)
    finally:
        await other.close()
    assert await count(conn, q) == 2


async def test_a_repeatable_read_retry_racing_another_fails_instead_of_duplicating(
    q: aioqueue.Queue, conn: asyncpg.Connection, dsn: str
) -> None:
    """A caller whose snapshot predates the other retry's commit cannot see that retry: it gets
    a serialization failure (retry the transaction), never a second copy."""
    failed = await _failed(q, conn)
    rr = await asyncpg.connect(dsn)
    try:
        tr = rr.transaction(isolation="repeatable_read")
        await tr.start()
        await rr.fetchval("SELECT 1")  # the snapshot is taken here
        first = await q.retry(failed)
        with pytest.raises(asyncpg.SerializationError):
            await rr.fetch(f'SELECT * FROM "{q.config.schema}".retry_job($1)', failed)
        await tr.rollback()
    finally:
        await rr.close()
    assert await q.retry(failed) == aioqueue.EnqueueResult(first.id, True)
    assert await count(conn, q) == 2


def test_cli_retry_and_retry_all_failed_twice_make_no_copies(dsn: str, schema: str) -> None:
    base = ["--dsn", dsn, "--schema", schema]
    assert aq(*base, "migrate").returncode == 0

    async def setup() -> list[int]:
        q = await aioqueue.Queue.connect(dsn, schema=schema)
        try:
            ids = []
            async with q.pool.acquire() as conn:
                for _ in range(3):
                    ids.append(await _failed(q, conn))  # type: ignore[arg-type]
            return ids
        finally:
            await q.close()

    async def active() -> int:
        c = await asyncpg.connect(dsn)
        try:
            return int(
                await c.fetchval(
                    f"""SELECT count(*) FROM "{schema}".jobs
                        WHERE state IN ('pending', 'scheduled', 'running')"""
                )
            )
        finally:
            await c.close()

    try:
        ids = anyio.run(setup)
        one = [json.loads(aq(*base, "jobs", "retry", str(ids[0]), "--json").stdout) for _ in "ab"]
        assert one[0]["id"] == one[1]["id"] and [o["deduped"] for o in one] == [False, True]
        for _ in range(2):
            proc = aq(*base, "jobs", "retry", "--all-failed", "--json")
            assert proc.returncode == 0, proc.stderr
            assert json.loads(proc.stdout) == {"retried": 3}
        assert anyio.run(active) == 3  # one retry per failed job, however often it is asked
    finally:

        async def drop() -> None:
            c = await asyncpg.connect(dsn)
            try:
                await c.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
            finally:
                await c.close()

        anyio.run(drop)
