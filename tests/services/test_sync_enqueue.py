"""aioqueue.sync: enqueue from synchronous code on a DB-API connection (psycopg 3, Django), in
the caller's transaction, with the async API's validation and outcomes. The blocking calls
run on the event loop: these tests share the async fixtures."""

from __future__ import annotations

import datetime as dt
import sys
from pathlib import Path

import anyio
import psycopg
import pytest

import aioqueue
from aioqueue import sync
from tests.support.worker_helpers import Recorder

ROOT = Path(__file__).resolve().parents[2]


async def test_enqueue_commits_with_the_callers_transaction(q: aioqueue.Queue, dsn: str) -> None:
    schema = q.config.schema
    with psycopg.connect(dsn) as conn:  # not autocommit: a transaction opens with the first call
        sync.enqueue(conn, "send.email", {"to": "a@b.com"}, schema=schema, priority=5)
        again = sync.enqueue(conn, "send.email", {"to": "x"}, schema=schema, unique_key="k1")
        dup = sync.enqueue(conn, "send.email", {"to": "y"}, schema=schema, unique_key="k1")
        conn.rollback()
        assert _count(conn, schema) == 0  # rolled back: nothing left
        sync.enqueue(conn, "send.email", {"to": "a@b.com"}, schema=schema, priority=5)
        again = sync.enqueue(conn, "send.email", {"to": "x"}, schema=schema, unique_key="k1")
        dup = sync.enqueue(conn, "send.email", {"to": "y"}, schema=schema, unique_key="k1")
        many = sync.enqueue_many(
            conn,
            [{"kind": "k", "payload": i} for i in range(3)]
            + [aioqueue.JobSpec(kind="k", payload="late", delay=dt.timedelta(hours=1))],
            schema=schema,
        )
        conn.commit()
        assert _count(conn, schema) == 6
    assert (dup.id, dup.deduped, again.deduped) == (again.id, True, False)
    assert [m.deduped for m in many] == [False] * 4
    assert sync.enqueue_many(psycopg.connect(dsn), [], schema=schema) == []


async def test_a_sync_enqueue_wakes_workers_at_commit(q: aioqueue.Queue, dsn: str) -> None:
    tasks = aioqueue.Tasks()
    done = anyio.Event()

    @tasks.task("ping")
    async def ping(ctx: aioqueue.JobContext, payload: object) -> None:
        done.set()

    rec = Recorder()
    # a 30 s poll: only the notification sent at the commit wakes it in time
    worker = aioqueue.Worker(q, tasks, poll_interval=30, hooks=[rec])
    async with anyio.create_task_group() as tg:
        tg.start_soon(worker.run)
        await rec.wait_for("worker_started")  # listening by then

        def produce() -> None:
            with psycopg.connect(dsn) as conn:
                sync.enqueue(conn, "ping", {}, schema=q.config.schema)

        await anyio.to_thread.run_sync(produce)
        with anyio.fail_after(10):
            await done.wait()
        await worker.stop()


async def test_bad_input_is_refused_before_anything_is_sent(q: aioqueue.Queue, dsn: str) -> None:
    schema = q.config.schema
    with psycopg.connect(dsn, autocommit=True) as conn:
        with pytest.raises(aioqueue.InvalidJobError, match="priority"):
            sync.enqueue(conn, "k", {}, schema=schema, priority=40_000)
        with pytest.raises(aioqueue.PayloadValueError, match=r"\$\.x"):
            sync.enqueue(conn, "k", {"x": float("nan")}, schema=schema)
        with pytest.raises(aioqueue.InvalidJobError, match="1"):
            sync.enqueue_many(conn, [{"kind": "k"}, {"kind": ""}], schema=schema)
        with pytest.raises(aioqueue.ConfigurationError):
            sync.enqueue(conn, "k", {}, schema="Robert'); DROP TABLE jobs;--")
        assert _count(conn, schema) == 0


async def test_workflow_and_flow_arguments_match_the_async_enqueue(
    q: aioqueue.Queue, dsn: str
) -> None:
    """depends_on, on_parent_failure, meta and concurrency_key as Queue.enqueue takes them; a
    missing parent raises JobNotFound, naming it, and writes nothing."""
    schema = q.config.schema
    with psycopg.connect(dsn, autocommit=True) as conn:
        parent = sync.enqueue(conn, "fetch", {"url": "u"}, schema=schema)
        child = sync.enqueue(
            conn,
            "parse",
            schema=schema,
            depends_on=(parent.id,),
            on_parent_failure="run",
            meta={"traceparent": "00-abc"},
            concurrency_key="tenant:1",
        )
        with pytest.raises(aioqueue.JobNotFound, match=str(10**12)):
            sync.enqueue(conn, "parse", schema=schema, depends_on=[10**12])
        with pytest.raises(aioqueue.InvalidJobError, match="on_parent_failure"):
            sync.enqueue(conn, "parse", schema=schema, on_parent_failure="maybe")  # type: ignore[arg-type]
        assert _count(conn, schema) == 2
    job = await q.get_job(child.id)
    assert job.state is aioqueue.JobState.WAITING
    assert (job.meta, job.concurrency_key) == ({"traceparent": "00-abc"}, "tenant:1")
    assert [link.id for link in await q.job_family(child.id)] == [parent.id]


async def test_the_django_example_enqueues_in_its_transaction(dsn: str, schema: str) -> None:
    with anyio.fail_after(60):
        proc = await anyio.run_process(
            [sys.executable, str(ROOT / "examples" / "django_signup.py")],
            env={**__import__("os").environ, "AIOQUEUE_DSN": dsn, "AIOQUEUE_SCHEMA": schema},
            cwd=ROOT,
            check=False,
        )
    out = proc.stdout.decode()
    assert proc.returncode == 0, proc.stderr.decode()[-2000:]
    assert "(deduped=False)" in out and "(deduped=True)" in out, out
    assert "failed signup: HTTP 500" in out
    assert "welcome jobs: 1" in out
    async with await aioqueue.Queue.connect(dsn, schema=schema) as q:
        await q.pool.execute(f'DROP SCHEMA "{schema}" CASCADE')


def _count(conn: psycopg.Connection, schema: str) -> int:
    row = conn.execute(f'SELECT count(*) FROM "{schema}".jobs').fetchone()
    assert row is not None
    return int(row[0])
