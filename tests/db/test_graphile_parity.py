"""graphile-worker parity (issue 24): the seed documents' own SQL runs exactly as written
(json payloads), a replaced running job is never run again, preserve_run_at after a failed
attempt takes the new run_at, and unsafe_dedupe ignores completed jobs
(services/test_enqueue_dedupe.py::test_unsafe_dedupe_inserts_anew_after_completion).
Real PostgreSQL, through add_job/add_jobs and the Python API."""

from __future__ import annotations

import datetime as dt
from collections.abc import AsyncIterator
from typing import Any

import anyio
import asyncpg
import pytest

import aioqueue
from aioqueue import JobState
from aioqueue._consumer.outcome import Outcome
from tests.support.worker_helpers import running_worker

pytestmark = pytest.mark.anyio

# graphile-worker's documented trigger (the SQL-API seed), verbatim: the schema is named
# graphile_worker so that not a character changes.
SEED_TRIGGER = """
CREATE FUNCTION my_table_created() RETURNS trigger AS $$
BEGIN
  PERFORM graphile_worker.add_job('task_identifier_here', json_build_object('id', NEW.id));
  RETURN NEW;
END;
$$ LANGUAGE plpgsql VOLATILE;

CREATE TRIGGER trigger_name AFTER INSERT ON my_table FOR EACH ROW EXECUTE PROCEDURE my_table_created();
"""  # noqa: E501 (verbatim)

SEED_TRIGGER_JOB = """
CREATE FUNCTION trigger_job() RETURNS trigger AS $$
BEGIN
  PERFORM graphile_worker.add_job(TG_ARGV[0], json_build_object(
    'schema', TG_TABLE_SCHEMA,
    'table', TG_TABLE_NAME,
    'op', TG_OP,
    'id', (CASE WHEN TG_OP = 'DELETE' THEN OLD.id ELSE NEW.id END)
  ));
  RETURN NEW;
END;
$$ LANGUAGE plpgsql VOLATILE;
"""

SEED_CALLS = [
    """SELECT graphile_worker.add_job(
  'send_email',
  json_build_object(
    'to', 'someone@example.com',
    'subject', 'graphile-worker test'
  )
);""",
    "SELECT graphile_worker.add_job('reminder', run_at := NOW() + INTERVAL '2 days');",
]


@pytest.fixture
async def gw(dsn: str, conn: asyncpg.Connection) -> AsyncIterator[aioqueue.Queue]:
    """A queue in the schema graphile's examples name, and a scratch table for triggers."""
    queue = await aioqueue.Queue.connect(dsn, schema="graphile_worker")
    await conn.execute("CREATE TABLE my_table (id serial PRIMARY KEY, note text)")
    try:
        yield queue
    finally:
        await conn.execute(
            "DROP TABLE IF EXISTS my_table CASCADE;"
            "DROP FUNCTION IF EXISTS my_table_created(); DROP FUNCTION IF EXISTS trigger_job();"
            "DROP SCHEMA IF EXISTS graphile_worker CASCADE"
        )
        await queue.close()


async def test_the_seed_trigger_example_runs_exactly_as_written(
    gw: aioqueue.Queue, conn: asyncpg.Connection
) -> None:
    await conn.execute(SEED_TRIGGER)
    row_id = await conn.fetchval("INSERT INTO my_table (note) VALUES ('a') RETURNING id")
    (job,) = await gw.list_jobs(kind="task_identifier_here")
    assert job.payload == {"id": row_id}
    assert job.state is JobState.PENDING
    # a worker runs it with the payload the trigger built
    tasks = aioqueue.Tasks()
    seen: list[Any] = []

    @tasks.task("task_identifier_here")
    async def handle(ctx: aioqueue.JobContext, payload: Any) -> None:
        seen.append(payload)

    async with running_worker(gw, tasks) as (_, rec):
        await rec.wait_for("completed", job.id)
    assert seen == [{"id": row_id}]


async def test_the_seed_generic_trigger_and_calls_run_exactly_as_written(
    gw: aioqueue.Queue, conn: asyncpg.Connection
) -> None:
    await conn.execute(SEED_TRIGGER_JOB)
    await conn.execute(
        "CREATE TRIGGER t AFTER INSERT OR DELETE ON my_table FOR EACH ROW "
        "EXECUTE PROCEDURE trigger_job('my_table.changed')"
    )
    row_id = await conn.fetchval("INSERT INTO my_table (note) VALUES ('a') RETURNING id")
    await conn.execute("DELETE FROM my_table")
    jobs = await gw.list_jobs(kind="my_table.changed")
    assert sorted(j.payload["op"] for j in jobs) == ["DELETE", "INSERT"]
    assert {j.payload["id"] for j in jobs} == {row_id}
    assert jobs[0].payload["table"] == "my_table"
    for sql in SEED_CALLS:
        await conn.fetchval(sql)
    (mail,) = await gw.list_jobs(kind="send_email")
    assert mail.payload == {"to": "someone@example.com", "subject": "graphile-worker test"}
    (later,) = await gw.list_jobs(kind="reminder")
    assert later.state is JobState.SCHEDULED and later.payload == {}
    # the documented parameterised form, with bind parameters
    job_id = await conn.fetchval(
        """SELECT graphile_worker.add_job(
  $1,
  payload := $2,
  queue_name := $3,
  run_at := NOW() + ($4 * INTERVAL '1 second'),
  max_attempts := $5
);""",
        "param.job",
        '{"n": 1}',
        "q1",
        30,
        4,
    )
    job = await gw.get_job(job_id)
    assert (job.payload, job.queue_name, job.max_attempts) == ({"n": 1}, "q1", 4)
    assert job.state is JobState.SCHEDULED


async def test_json_jsonb_and_text_payloads_are_one_add_job_and_add_jobs(
    q: aioqueue.Queue, conn: asyncpg.Connection
) -> None:
    """Every payload form picks one function (no 'is not unique'), all validated alike."""
    s = q.config.schema
    ids = [
        await conn.fetchval(f"""SELECT "{s}".add_job('p', json_build_object('a', 1))"""),
        await conn.fetchval(f"""SELECT "{s}".add_job('p', jsonb_build_object('a', 1))"""),
        await conn.fetchval(f"""SELECT "{s}".add_job('p', '{{"a": 1}}')"""),
        await conn.fetchval(f"""SELECT "{s}".add_job('p', '{{"a": 1}}'::text)"""),
        await conn.fetchval(f"""SELECT "{s}".add_job('p', payload := to_json(1))"""),
    ]
    payloads = [(await q.get_job(i)).payload for i in ids]
    assert payloads == [{"a": 1}] * 4 + [1]
    empty = await conn.fetchval(f"""SELECT "{s}".add_job('p', NULL::json)""")
    assert (await q.get_job(empty)).payload == {}
    # the same checks whatever the form: a NUL escape, bad JSON, bad limits
    for sql in (
        f"""SELECT "{s}".add_job('p', '{{"a": "\\u0000"}}'::json)""",
        f"""SELECT "{s}".add_job('p', 'not json')""",
        f"""SELECT "{s}".add_job('p', json_build_object('a', 1), delay := -1)""",
    ):
        with pytest.raises(asyncpg.PostgresError):
            await conn.fetchval(sql)
    for specs in (
        "json_build_array(json_build_object('kind', 'b', 'payload', json_build_object('i', 1)))",
        """'[{"kind": "b", "payload": {"i": 1}}]'""",
        """'[{"kind": "b", "payload": {"i": 1}}]'::jsonb""",
        """'[{"kind": "b", "payload": {"i": 1}}]'::text""",
    ):
        (row,) = await conn.fetch(f'SELECT * FROM "{s}".add_jobs({specs})')
        assert (await q.get_job(row["id"])).payload == {"i": 1}, specs


# -- a replaced running job is never run again -------------------------------------------------


async def _replace(q: aioqueue.Queue, conn: asyncpg.Connection, via: str, mode: str) -> int:
    if via == "sql":
        return int(
            await conn.fetchval(
                f"""SELECT "{q.config.schema}".add_job('sync', json_build_object('v', 2),
                                                      unique_key := 'k', on_conflict := $1)""",
                mode,
            )
        )
    return (await q.enqueue("sync", {"v": 2}, unique_key="k", on_conflict=mode)).id  # type: ignore[arg-type]


@pytest.mark.parametrize("via", ["sql", "python"])
@pytest.mark.parametrize("mode", ["replace", "preserve_run_at"])
async def test_a_replaced_running_job_that_fails_is_not_retried(
    q: aioqueue.Queue, conn: asyncpg.Connection, via: str, mode: str
) -> None:
    tasks = aioqueue.Tasks()
    release = anyio.Event()
    runs: list[int] = []

    @tasks.task("sync", retry_delay=0)
    async def sync(ctx: aioqueue.JobContext, payload: dict[str, int]) -> int:
        runs.append(payload["v"])
        if payload["v"] == 1:
            await release.wait()
            raise ConnectionError("upstream down")
        return payload["v"]

    first = await q.enqueue("sync", {"v": 1}, unique_key="k")
    async with running_worker(q, tasks) as (_, rec):
        await rec.wait_for("started", first.id)
        new_id = await _replace(q, conn, via, mode)
        assert new_id != first.id
        release.set()
        await rec.wait_for("completed", new_id)
        await rec.wait(lambda r: bool(r.of("retried", first.id) or r.of("failed", first.id)))
    old = await q.get_job(first.id)
    assert old.state is JobState.FAILED  # settled for good, its error kept
    assert (old.attempts, old.max_attempts, old.unique_key) == (1, 1, None)
    assert old.error is not None and old.error.message == "upstream down"
    assert old.finished_at is not None
    assert runs.count(1) == 1  # never run again, next to its replacement
    assert (await q.get_job(new_id)).state is JobState.COMPLETED


async def test_a_replaced_running_job_may_complete(
    q: aioqueue.Queue, conn: asyncpg.Connection
) -> None:
    tasks = aioqueue.Tasks()
    release = anyio.Event()

    @tasks.task("sync")
    async def sync(ctx: aioqueue.JobContext, payload: dict[str, int]) -> int:
        if payload["v"] == 1:
            await release.wait()
        return payload["v"]

    first = await q.enqueue("sync", {"v": 1}, unique_key="k")
    async with running_worker(q, tasks) as (_, rec):
        await rec.wait_for("started", first.id)
        new_id = await _replace(q, conn, "sql", "replace")
        release.set()
        await rec.wait_for("completed", first.id)
        await rec.wait_for("completed", new_id)
    old = await q.get_job(first.id)
    assert (old.state, old.result) == (JobState.COMPLETED, 1)


async def test_a_replaced_running_job_given_back_at_a_stop_is_not_run_again(
    q: aioqueue.Queue, conn: asyncpg.Connection
) -> None:
    tasks = aioqueue.Tasks()

    @tasks.task("sync")
    async def sync(ctx: aioqueue.JobContext, payload: dict[str, int]) -> None:
        await anyio.sleep(60)

    first = await q.enqueue("sync", {"v": 1}, unique_key="k")
    async with running_worker(q, tasks, stop_timeout=0.2) as (_, rec):
        await rec.wait_for("started", first.id)
        new_id = await q.enqueue(
            "sync", {"v": 2}, unique_key="k", delay=3600, on_conflict="replace"
        )
    # the stop gave the attempt back; a replaced job ends there instead of waiting to run again
    old = await q.get_job(first.id)
    assert old.state is JobState.CANCELLED
    assert old.error is not None and old.error.type == "Replaced"
    assert f"replaced by job {new_id.id}" in old.error.message
    assert (await q.get_job(new_id.id)).state is JobState.SCHEDULED


async def test_a_replaced_running_job_whose_lease_expires_is_failed_not_retried(
    q: aioqueue.Queue, conn: asyncpg.Connection
) -> None:
    first = await q.enqueue("sync", {"v": 1}, unique_key="k", max_attempts=10)
    await q.queries.job_claim(
        conn,
        kinds=["sync"],
        default_max_attempts=[25],
        forbidden_flags=[],
        batch=1,
        worker_id="lost-worker",
        lease=30.0,
    )
    new_id = await _replace(q, conn, "sql", "preserve_run_at")
    await conn.execute(
        f"""UPDATE "{q.config.schema}".jobs SET lease_expires_at = now() - interval '1 second'
            WHERE id = $1""",
        first.id,
    )
    rows = await q.queries.job_rescue_expired(conn, limit=10)
    assert {r["id"]: r["state"] for r in rows} == {first.id: "failed"}
    assert (await q.get_job(new_id)).state is JobState.PENDING


@pytest.mark.parametrize("via", ["sql", "python"])
async def test_supersede_of_a_running_job_is_not_retried_either(
    q: aioqueue.Queue, conn: asyncpg.Connection, via: str
) -> None:
    """supersede keeps its stronger behaviour (the handler is cancelled) and, like replace,
    never retries the old job: here the handler fails before the cancellation reaches it."""
    first = await q.enqueue("sync", {"v": 1}, unique_key="k")
    (claimed,) = await q.queries.job_claim(
        conn,
        kinds=["sync"],
        default_max_attempts=[25],
        forbidden_flags=[],
        batch=1,
        worker_id="w",
        lease=30.0,
    )
    new_id = await _replace(q, conn, via, "supersede")
    old = await conn.fetchrow(
        f'SELECT cancel_requested, max_attempts, replaced_by FROM "{q.config.schema}".jobs '
        "WHERE id = $1",
        first.id,
    )
    assert tuple(old) == (True, 1, new_id)
    # the worker reports a failed attempt it would retry: the database settles it as failed
    retry = Outcome(
        id=first.id,
        lease_token=claimed["lease_token"],
        kind="sync",
        attempt=1,
        state="scheduled",
        delay=1.0,
        error='{"message": "boom", "type": "E", "traceback": "", "attempt": 1}',
    )
    accepted = await q.queries.job_finish_many(conn, outcomes=[retry])
    assert [r["id"] for r in accepted] == [first.id]
    job = await q.get_job(first.id)
    assert job.state is JobState.FAILED and job.error is not None and job.error.message == "boom"


# -- preserve_run_at after a failed attempt ----------------------------------------------------


async def test_preserve_run_at_after_a_failed_attempt_takes_the_new_run_at(
    q: aioqueue.Queue,
) -> None:
    tasks = aioqueue.Tasks()

    @tasks.task("digest", retry_delay=3600)
    async def digest(ctx: aioqueue.JobContext, payload: Any) -> None:
        raise ConnectionError("smtp down")

    first = await q.enqueue("digest", {"v": 1}, unique_key="u")
    async with running_worker(q, tasks) as (_, rec):
        await rec.wait_for("retried", first.id)
    failed_once = await q.get_job(first.id)
    assert failed_once.state is JobState.SCHEDULED and failed_once.attempts == 1
    again = await q.enqueue(
        "digest", {"v": 2}, unique_key="u", on_conflict="preserve_run_at", delay=60
    )
    assert again.id == first.id and again.deduped
    job = await q.get_job(first.id)
    # all attributes updated, run_at included (graphile-worker: once attempted)
    assert job.payload == {"v": 2}
    assert job.run_at < failed_once.run_at - dt.timedelta(minutes=30)
    assert job.attempts == 0 and job.error is None
    # now never attempted: a further preserve_run_at keeps this run_at
    kept = await q.enqueue("digest", {"v": 3}, unique_key="u", on_conflict="preserve_run_at")
    assert kept.id == first.id
    assert (await q.get_job(first.id)).run_at == job.run_at


async def test_preserve_run_at_after_a_failed_attempt_through_add_job(
    q: aioqueue.Queue, conn: asyncpg.Connection
) -> None:
    s = q.config.schema
    never = await conn.fetchval(
        f"""SELECT "{s}".add_job('d', unique_key := 'a', run_at := now() + interval '1 hour')"""
    )
    failed = await conn.fetchval(
        f"""SELECT "{s}".add_job('d', unique_key := 'b', run_at := now() + interval '1 hour')"""
    )
    # b failed an attempt and waits for its retry (what a worker's failure leaves behind)
    await conn.execute(
        f"""UPDATE "{s}".jobs SET attempts = 1, error = '{{"message": "x"}}',
                                  run_at = now() + interval '2 hours' WHERE id = $1""",
        failed,
    )
    for key in ("a", "b"):
        await conn.fetchval(
            f"""SELECT "{s}".add_job('d', json_build_object('new', true), unique_key := $1,
                                     on_conflict := 'preserve_run_at', delay := 5)""",
            key,
        )
    kept, moved = await q.get_job(never), await q.get_job(failed)
    assert kept.run_at - kept.created_at == dt.timedelta(hours=1)
    assert kept.payload == {"new": True}
    assert moved.payload == {"new": True} and moved.attempts == 0
    assert dt.timedelta(seconds=4) < moved.run_at - moved.created_at < dt.timedelta(minutes=1)
