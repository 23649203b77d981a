"""History out of the hot table (issue 22, migration 0011): finished jobs move from `jobs` to the
partitioned `jobs_history`, reads are unchanged for users, retention drops whole partitions, and
a job is always in exactly one of the two tables (or gone after retention)."""

from __future__ import annotations

import datetime as dt
from typing import Any

import anyio
import asyncpg
import pytest

import aioqueue
import aioqueue.testing
from aioqueue import JobState
from aioqueue._db import migrate as migrate_module
from aioqueue._maintenance.pruner import Pruner
from tests.support.processes import until
from tests.support.worker_helpers import running_worker

pytestmark = pytest.mark.anyio

tasks = aioqueue.Tasks()


@tasks.task("ok")
async def ok(ctx: aioqueue.JobContext, payload: Any) -> Any:
    return {"double": payload * 2}


@tasks.task("boom")
async def boom(ctx: aioqueue.JobContext, payload: Any) -> None:
    raise RuntimeError("boom")


@tasks.task("child")
async def child(ctx: aioqueue.JobContext, payload: Any) -> Any:
    return sorted((await ctx.parent_results()).values(), key=str)


def pruner(q: aioqueue.Queue, **retention: float | None) -> Pruner:
    return Pruner(q.pool, q.queries, interval=60, retention=retention, move_after=0)


async def where(conn: asyncpg.Connection, schema: str, job_id: int) -> list[str]:
    """The tables holding ``job_id``, read in one statement (one snapshot)."""
    rows = await conn.fetch(
        f"SELECT 'hot' AS t FROM \"{schema}\".jobs WHERE id = $1 "
        f"UNION ALL SELECT 'history' FROM \"{schema}\".jobs_history WHERE id = $1",
        job_id,
    )
    return [r["t"] for r in rows]


async def moved(q: aioqueue.Queue) -> int:
    p = pruner(q)
    await p.prune()  # makes the partitions
    return await p.move()


async def test_finished_jobs_leave_the_hot_table_and_read_the_same(
    q: aioqueue.Queue, conn: asyncpg.Connection
) -> None:
    s = q.config.schema
    done = await q.enqueue("ok", 21)
    failed = await q.enqueue("boom", None, max_attempts=1)
    waiting = await q.enqueue("ok", 1, delay=3600)
    await aioqueue.testing.drain(q, tasks)
    before = {j: await q.get_job(j) for j in (done.id, failed.id, waiting.id)}
    listed_before = [j.id for j in await q.list_jobs()]
    stats_before = (await q.stats()).totals
    history_before = await q.history(minutes=5)

    assert await moved(q) >= 2
    assert await where(conn, s, done.id) == ["history"]
    assert await where(conn, s, failed.id) == ["history"]
    assert await where(conn, s, waiting.id) == ["hot"]
    for job_id, job in before.items():
        assert await q.get_job(job_id) == job
    assert (await q.wait(done.id, timeout=5)).result == {"double": 42}
    assert (await q.wait(failed.id, timeout=5)).state is JobState.FAILED
    assert [j.id for j in await q.list_jobs()] == listed_before
    assert [j.id for j in await q.list_jobs(state="completed")] == [done.id]
    assert (await q.stats()).totals == stats_before
    assert await q.history(minutes=5) == history_before
    assert (
        await conn.fetchval(
            f"SELECT count(*) FROM \"{s}\".jobs WHERE state IN ('completed', 'failed', 'cancelled')"
        )
        == 0
    )


async def test_wait_for_a_job_that_finishes_and_moves_meanwhile(q: aioqueue.Queue) -> None:
    out = await q.enqueue("ok", 5)
    async with anyio.create_task_group() as tg:
        results: list[aioqueue.Job] = []

        async def waiter() -> None:
            results.append(await q.wait(out.id, timeout=20))

        tg.start_soon(waiter)
        async with running_worker(q, tasks) as (_worker, rec):
            await rec.wait_for("completed", out.id)
            await moved(q)
    assert results[0].result == {"double": 10}


async def test_retry_and_lineage_of_a_job_in_history(
    q: aioqueue.Queue, conn: asyncpg.Connection
) -> None:
    s = q.config.schema
    failed = await q.enqueue("boom", None, max_attempts=1)
    await aioqueue.testing.drain(q, tasks)
    await moved(q)
    assert await where(conn, s, failed.id) == ["history"]
    again = await q.retry(failed.id)
    assert not again.deduped
    assert await q.retry(failed.id) == aioqueue.EnqueueResult(again.id, True)  # idempotent
    assert (await q.get_job(again.id)).rescheduled_from == failed.id
    assert [j.id for j in await q.lineage(again.id)] == [failed.id, again.id]
    await aioqueue.testing.drain(q, tasks)
    await moved(q)
    assert [j.id for j in await q.lineage(failed.id)] == [failed.id, again.id]
    with pytest.raises(aioqueue.JobStateError):
        await q.retry((await q.enqueue("ok", 1)).id)


async def test_parents_stay_while_children_wait_and_read_from_history(
    q: aioqueue.Queue, conn: asyncpg.Connection
) -> None:
    s = q.config.schema
    a = await q.enqueue("ok", 1)
    b = await q.enqueue("ok", 2, delay=3600)
    c = await q.enqueue("child", None, depends_on=[a.id, b.id])
    await aioqueue.testing.drain(q, tasks)  # runs a; c waits for b
    await moved(q)
    assert await where(conn, s, a.id) == ["hot"]  # c may still read a's result
    await q.reschedule([b.id], run_at=dt.datetime.now(dt.UTC))
    await aioqueue.testing.drain(q, tasks)
    assert (await q.get_job(c.id)).result == [{"double": 2}, {"double": 4}]
    await moved(q)
    assert {await where(conn, s, j) == ["history"] for j in (a.id, b.id, c.id)} == {True}
    family = await q.job_family(c.id)
    assert sorted((link.relation, link.id) for link in family) == [
        ("parent", a.id),
        ("parent", b.id),
    ]
    # a new job may depend on a parent already in history: it is final, so it runs at once
    d = await q.enqueue("child", None, depends_on=[a.id])
    await aioqueue.testing.drain(q, tasks)
    assert (await q.get_job(d.id)).result == [{"double": 2}]
    failed = await q.enqueue("boom", None, max_attempts=1)
    await aioqueue.testing.drain(q, tasks)
    await moved(q)
    e = await q.enqueue("child", None, depends_on=[failed.id])
    assert (await q.get_job(e.id)).state is JobState.CANCELLED


async def test_partitions_are_dropped_whole_at_retention(
    q: aioqueue.Queue, conn: asyncpg.Connection
) -> None:
    s = q.config.schema
    await conn.execute(f'UPDATE "{s}".jobs_history_settings SET partition_seconds = 3600')
    now = await conn.fetchval("SELECT now()")
    old, fresh, kept = await conn.fetch(
        f"""INSERT INTO "{s}".jobs (kind, state, finished_at)
            VALUES ('ok', 'completed', $1::timestamptz - interval '3 days'),
                   ('ok', 'completed', $1::timestamptz + interval '5 hours'),
                   ('ok', 'failed', $1::timestamptz - interval '3 days')
            RETURNING id""",
        now,
    )
    await q.queries.history_prepare(q.pool, ahead=10 * 3600)
    in_6h = now + dt.timedelta(hours=6)  # when the row finishing in 5 hours has finished
    for state in ("completed", "failed"):
        await q.queries.job_history_move(q.pool, state=state, limit=100, older_than=0, now=in_6h)
    assert await conn.fetchval(f'SELECT count(*) FROM "{s}".jobs_history') == 3
    later = now + dt.timedelta(hours=25)
    dropped = await q.queries.history_drop_expired(
        q.pool, state="completed", retention=86400, now=later
    )
    assert dropped == 1
    with pytest.raises(aioqueue.JobNotFound):
        await q.get_job(old["id"])
    assert (await q.get_job(fresh["id"])).state is JobState.COMPLETED
    assert (await q.get_job(kept["id"])).state is JobState.FAILED  # its own retention
    names = await conn.fetch(f'SELECT name FROM "{s}".jobs_history_partitions')
    tables = await conn.fetch(
        "SELECT c.relname AS name FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid "
        "WHERE i.inhparent = ANY($1::regclass[])",
        [f'"{s}".jobs_history_{state}' for state in ("completed", "failed", "cancelled")],
    )
    assert sorted(r["name"] for r in names) == sorted(r["name"] for r in tables)
    # retention None keeps a state's history: nothing of it is ever dropped
    p = Pruner(q.pool, q.queries, interval=60, retention={"completed": 86400, "failed": None})
    await p.prune()
    assert (await q.get_job(kept["id"])).state is JobState.FAILED


async def test_history_has_the_columns_of_jobs_in_the_same_order(
    q: aioqueue.Queue, conn: asyncpg.Connection
) -> None:
    """The move copies rows column by column: a column added to jobs must be added to
    jobs_history in the same migration (and so to every partition)."""
    s = q.config.schema
    query = (
        "SELECT a.attname, format_type(a.atttypid, a.atttypmod) FROM pg_attribute a "
        "WHERE a.attrelid = $1::regclass AND a.attnum > 0 AND NOT a.attisdropped ORDER BY a.attnum"
    )
    hot = await conn.fetch(query, f'"{s}".jobs')
    assert await conn.fetch(query, f'"{s}".jobs_history') == hot


async def test_workers_and_movers_never_lose_or_duplicate_a_job(
    q: aioqueue.Queue, conn: asyncpg.Connection
) -> None:
    s = q.config.schema
    n = 1500
    outs = await q.enqueue_many([{"kind": "ok", "payload": i} for i in range(n)])
    ids = [o.id for o in outs]
    await pruner(q).prune()
    movers = [pruner(q) for _ in range(2)]
    overlaps: list[int] = []
    seen: list[int] = []
    async with running_worker(q, tasks, concurrency=20) as (_worker, rec):
        while True:
            with anyio.fail_after(60):
                for m in movers:
                    await m.move()
            row = await conn.fetchrow(
                f"""SELECT (SELECT count(*) FROM "{s}".jobs AS j
                            JOIN "{s}".jobs_history AS h USING (id)) AS both,
                           (SELECT count(*) FROM (SELECT id FROM "{s}".jobs
                            UNION ALL SELECT id FROM "{s}".jobs_history) AS a
                            WHERE a.id = ANY($1::bigint[])) AS total,
                           (SELECT count(*) FROM "{s}".jobs_history) AS moved""",
                ids,
            )
            overlaps.append(row["both"])
            seen.append(row["total"])
            if row["moved"] == n:
                break
            await rec.wait(lambda r: len(r.of("completed")) > 0)
    assert set(overlaps) == {0}
    assert set(seen) == {n}
    results = await conn.fetch(f'SELECT id, result FROM "{s}".jobs_history ORDER BY id')
    assert [r["id"] for r in results] == ids
    assert len(rec.of("completed")) == n


async def test_an_install_at_0010_with_finished_rows_migrates_online(
    dsn: str, schema: str, conn: asyncpg.Connection, monkeypatch: pytest.MonkeyPatch
) -> None:
    full = migrate_module.migrations()
    assert full[10].name == "history"
    monkeypatch.setattr(migrate_module, "migrations", lambda: full[:10])
    await migrate_module.migrate(conn, schema)
    s = schema
    await conn.execute(
        f"""INSERT INTO "{s}".jobs (kind, state, finished_at, result)
            SELECT 'ok', 'completed', now() - make_interval(mins => i), jsonb_build_object('i', i)
            FROM generate_series(1, 3000) AS i;
            INSERT INTO "{s}".jobs (kind, state, finished_at)
            SELECT 'old', 'completed', now() - interval '30 days' FROM generate_series(1, 50);
            INSERT INTO "{s}".jobs (kind) SELECT 'ok' FROM generate_series(1, 10)"""
    )
    monkeypatch.setattr(migrate_module, "migrations", lambda: full)
    assert await migrate_module.migrate(conn, schema) == [11, 12, 13, 14]
    # the migration moved nothing: the rows move in batches afterwards
    assert await conn.fetchval(f'SELECT count(*) FROM "{s}".jobs') == 3060
    q = await aioqueue.Queue.connect(dsn, schema=schema)
    try:
        first = await q.get_job(1)
        p = Pruner(
            q.pool,
            q.queries,
            interval=60,
            retention={"completed": 7 * 86400.0},
            batch=500,
            move_after=0,
        )
        assert await p.prune() == 50  # past retention: deleted, not moved
        assert await p.move() == 3000
        assert await conn.fetchval(f'SELECT count(*) FROM "{s}".jobs') == 10
        assert await q.get_job(1) == first
        assert (await q.stats()).totals["completed"] == 3000
    finally:
        await q.pool.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
        await q.close()


async def test_unsafe_dedupe_still_matches_a_kept_job_in_history(
    q: aioqueue.Queue, conn: asyncpg.Connection
) -> None:
    """unsafe_dedupe matches a waiting, running or failed job with the key (migration 0008):
    a failed one in history still does."""
    s = q.config.schema
    first = await q.enqueue("boom", 1, unique_key="u", on_conflict="unsafe_dedupe", max_attempts=1)
    await aioqueue.testing.drain(q, tasks)
    await moved(q)
    assert await where(conn, s, first.id) == ["history"]
    before = await q.get_job(first.id)
    again = await q.enqueue("boom", 2, unique_key="u", on_conflict="unsafe_dedupe")
    assert again == aioqueue.EnqueueResult(first.id, True)
    assert await q.get_job(first.id) == before  # unchanged, read once
    assert await where(conn, s, first.id) == ["hot"]  # brought back; moved out again later
    await moved(q)
    assert await where(conn, s, first.id) == ["history"]
    # a completed job does not count (as before the history)
    done = await q.enqueue("ok", 3, unique_key="v", on_conflict="unsafe_dedupe")
    await aioqueue.testing.drain(q, tasks)
    await moved(q)
    other = await q.enqueue("ok", 3, unique_key="v", on_conflict="unsafe_dedupe")
    assert not other.deduped and other.id != done.id


async def test_a_worker_moves_finished_jobs_after_its_history_move_after(
    q: aioqueue.Queue, conn: asyncpg.Connection
) -> None:
    """``history_move_after=0``: the worker's pruner moves a job as soon as it finished (the
    hot table then holds only a move interval's worth); a bad value is refused up front."""
    for bad in (-1, float("nan"), float("inf"), "60"):
        with pytest.raises(aioqueue.ConfigurationError, match="history_move_after"):
            aioqueue.Worker(q, tasks, history_move_after=bad)
    job = await q.enqueue("ok", 1)
    async with running_worker(q, tasks, history_move_after=0, prune_interval=0.1):
        assert (await q.wait(job.id, timeout=10)).state is JobState.COMPLETED

        async def in_history() -> bool:  # the pruner's move shows only in the tables
            return await where(conn, q.config.schema, job.id) == ["history"]

        await until(in_history, 10)
    assert (await q.get_job(job.id)).result == {"double": 2}
