"""Dedupe (SPEC "Dedupe", RELIABILITY F1): every on_conflict mode against a real PostgreSQL.

Jobs are put into running/completed/failed/cancelled state by updating the row directly: these
tests exercise the producer side only.
"""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import AsyncIterator, Callable
from typing import Any

import anyio
import asyncpg
import pytest

import aioqueue
from aioqueue import EnqueueResult, JobState

pytestmark = pytest.mark.anyio

MODES = ["ignore", "replace", "preserve_run_at", "unsafe_dedupe", "supersede"]
UPDATING_MODES = ["replace", "preserve_run_at", "supersede"]
FINISHED = ["completed", "cancelled", "failed"]


# -- helpers ----------------------------------------------------------------------------------


async def set_row(conn: asyncpg.Connection, q: aioqueue.Queue, job_id: int, **cols: Any) -> None:
    """UPDATE one job's columns directly (state names are cast to the schema's enum)."""
    s = q.config.schema
    sets = []
    for i, name in enumerate(cols, start=2):
        cast = f'::text::"{s}".job_state' if name == "state" else ""
        sets.append(f"{name} = ${i}{cast}")
    await conn.execute(
        f'UPDATE "{s}".jobs SET {", ".join(sets)} WHERE id = $1', job_id, *cols.values()
    )


async def row(conn: asyncpg.Connection, q: aioqueue.Queue, job_id: int) -> asyncpg.Record:
    return await conn.fetchrow(
        f'SELECT *, state::text AS state_text FROM "{q.config.schema}".jobs WHERE id = $1', job_id
    )


async def count(conn: asyncpg.Connection, q: aioqueue.Queue, where: str = "true") -> int:
    return int(await conn.fetchval(f'SELECT count(*) FROM "{q.config.schema}".jobs WHERE {where}'))


async def db_now(conn: asyncpg.Connection) -> dt.datetime:
    return await conn.fetchval("SELECT clock_timestamp()")


class Notifications:
    """Payloads received on one channel; wait for a condition with a deadline, never a sleep."""

    def __init__(self) -> None:
        self.payloads: list[str] = []
        self._changed = asyncio.Event()

    def __call__(self, conn: object, pid: int, channel: str, payload: str) -> None:
        self.payloads.append(payload)
        self._changed.set()

    async def wait_for(self, predicate: Callable[[list[str]], bool], timeout: float = 5) -> None:
        with anyio.fail_after(timeout):
            while not predicate(self.payloads):
                self._changed.clear()
                await self._changed.wait()


@pytest.fixture
async def listener(q: aioqueue.Queue) -> AsyncIterator[Notifications]:
    assert q.dsn is not None
    got = Notifications()
    c = await asyncpg.connect(q.dsn)
    channel = f"aioqueue_{q.config.schema}"  # the documented, fixed channel name
    assert q.config.channel == channel
    await c.add_listener(channel, got)
    try:
        yield got
    finally:
        await c.close()


@pytest.fixture
async def q20(dsn: str, schema: str) -> AsyncIterator[aioqueue.Queue]:
    """A queue whose pool lets 20 enqueues really run at once."""
    queue = await aioqueue.Queue.connect(dsn, schema=schema, pool_max_size=20)
    try:
        yield queue
    finally:
        await queue.pool.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
        await queue.close()


# -- ignore -----------------------------------------------------------------------------------


async def test_ignore_returns_existing_job_unchanged(
    q: aioqueue.Queue, conn: asyncpg.Connection
) -> None:
    first = await q.enqueue("mail", {"n": 1}, unique_key="k", priority=1, delay=60)
    assert first.deduped is False
    again = await q.enqueue("mail", {"n": 2}, unique_key="k", priority=9, flags=["x"])
    assert again == EnqueueResult(first.id, True)
    job = await q.get_job(first.id)
    assert (job.payload, job.priority, job.flags, job.state) == (
        {"n": 1},
        1,
        [],
        JobState.SCHEDULED,
    )
    assert await count(conn, q) == 1
    # the default mode is ignore
    assert await q.enqueue("mail", {"n": 3}, unique_key="k", on_conflict="ignore") == again


async def test_ignore_while_running_returns_the_running_job(
    q: aioqueue.Queue, conn: asyncpg.Connection
) -> None:
    first = await q.enqueue("mail", {"n": 1}, unique_key="k")
    await set_row(conn, q, first.id, state="running")
    assert await q.enqueue("mail", {"n": 2}, unique_key="k") == EnqueueResult(first.id, True)
    assert (await row(conn, q, first.id))["unique_key"] == "k"
    assert await count(conn, q) == 1


@pytest.mark.parametrize("mode", MODES)
async def test_dedupe_is_per_kind_not_global(q: aioqueue.Queue, mode: Any) -> None:
    a = await q.enqueue("a.kind", unique_key="shared", on_conflict=mode)
    b = await q.enqueue("b.kind", unique_key="shared", on_conflict=mode)
    assert not a.deduped and not b.deduped and a.id != b.id
    # keys differ: no dedupe either
    c = await q.enqueue("a.kind", unique_key="other", on_conflict=mode)
    assert not c.deduped and c.id not in (a.id, b.id)


@pytest.mark.parametrize("finished", FINISHED)
@pytest.mark.parametrize("mode", ["ignore", "replace", "preserve_run_at", "supersede"])
async def test_key_is_free_once_the_job_finished(
    q: aioqueue.Queue, conn: asyncpg.Connection, mode: Any, finished: str
) -> None:
    first = await q.enqueue("k", [1], unique_key="u", on_conflict=mode)
    await set_row(conn, q, first.id, state=finished)
    fresh = await q.enqueue("k", [2], unique_key="u", on_conflict=mode)
    assert not fresh.deduped and fresh.id != first.id
    old = await row(conn, q, first.id)
    assert (old["state_text"], old["payload"], old["unique_key"]) == (finished, "[1]", "u")
    assert (await q.get_job(fresh.id)).payload == [2]


@pytest.mark.parametrize("state", ["pending", "scheduled", "running", "failed"])
async def test_unsafe_dedupe_matches_a_waiting_running_or_failed_job(
    q: aioqueue.Queue, conn: asyncpg.Connection, state: str
) -> None:
    first = await q.enqueue("once", {"v": 1}, unique_key="u", on_conflict="unsafe_dedupe")
    assert not first.deduped
    await set_row(conn, q, first.id, state=state)
    again = await q.enqueue(
        "once", {"v": 2}, unique_key="u", on_conflict="unsafe_dedupe", priority=5
    )
    assert again == EnqueueResult(first.id, True)
    kept = await row(conn, q, first.id)  # not updated in any way
    assert (kept["state_text"], kept["payload"], kept["priority"]) == (state, '{"v": 1}', 0)
    assert await count(conn, q) == 1


async def test_unsafe_dedupe_inserts_when_no_kept_job_has_the_key(
    q: aioqueue.Queue, conn: asyncpg.Connection
) -> None:
    first = await q.enqueue("once", unique_key="u", on_conflict="unsafe_dedupe")
    await conn.execute(f'DELETE FROM "{q.config.schema}".jobs WHERE id = $1', first.id)  # pruned
    again = await q.enqueue("once", unique_key="u", on_conflict="unsafe_dedupe")
    assert not again.deduped and again.id != first.id
    # a failed job still blocks unsafe_dedupe, but not ignore
    await set_row(conn, q, again.id, state="failed")
    assert (await q.enqueue("once", unique_key="u", on_conflict="unsafe_dedupe")).deduped
    assert not (await q.enqueue("once", unique_key="u")).deduped


@pytest.mark.parametrize("finished", ["completed", "cancelled"])
async def test_unsafe_dedupe_inserts_anew_after_completion(
    q: aioqueue.Queue, conn: asyncpg.Connection, finished: str
) -> None:
    """As graphile-worker, which deletes completed jobs: a completed (or cancelled) job with the
    key does not count, through the Python API and add_job alike."""
    s = q.config.schema
    first = await q.enqueue("once", {"v": 1}, unique_key="u", on_conflict="unsafe_dedupe")
    await set_row(conn, q, first.id, state=finished)
    again = await q.enqueue("once", {"v": 2}, unique_key="u", on_conflict="unsafe_dedupe")
    assert not again.deduped and again.id != first.id
    await set_row(conn, q, again.id, state=finished)
    sql_id = await conn.fetchval(
        f"""SELECT "{s}".add_job('once', '{{"v": 3}}', unique_key := 'u',
                                 on_conflict := 'unsafe_dedupe')"""
    )
    assert sql_id not in (first.id, again.id)
    # ... and the new job counts for the next one, from either side
    dup = await conn.fetchval(
        f"""SELECT "{s}".add_job('once', unique_key := 'u', on_conflict := 'unsafe_dedupe')"""
    )
    assert dup == sql_id
    assert await q.enqueue("once", unique_key="u", on_conflict="unsafe_dedupe") == EnqueueResult(
        sql_id, True
    )
    assert (await row(conn, q, first.id))["state_text"] == finished  # kept, not updated


# -- replace / preserve_run_at ----------------------------------------------------------------


@pytest.mark.parametrize("mode", ["replace", "supersede"])
async def test_replace_updates_every_value_of_a_waiting_job(
    q: aioqueue.Queue, conn: asyncpg.Connection, mode: Any
) -> None:
    first = await q.enqueue(
        "digest",
        {"v": 1},
        unique_key="u",
        on_conflict=mode,
        delay=3600,
        priority=1,
        max_attempts=3,
        queue_name="q1",
        flags=["a"],
    )
    assert (await q.get_job(first.id)).state is JobState.SCHEDULED
    run_at = dt.datetime.now(dt.UTC) + dt.timedelta(hours=5)
    again = await q.enqueue(
        "digest",
        {"v": 2},
        unique_key="u",
        on_conflict=mode,
        run_at=run_at,
        priority=-4,
        max_attempts=7,
        queue_name="q2",
        flags=["b", "c"],
    )
    assert again == EnqueueResult(first.id, True)
    job = await q.get_job(first.id)
    assert job.payload == {"v": 2}
    assert (job.priority, job.max_attempts, job.queue_name, job.flags) == (-4, 7, "q2", ["b", "c"])
    assert job.run_at == run_at
    assert job.state is JobState.SCHEDULED
    # replaced with no delay: due now, so pending
    now = await db_now(conn)
    await q.enqueue("digest", {"v": 3}, unique_key="u", on_conflict=mode)
    job = await q.get_job(first.id)
    assert job.state is JobState.PENDING
    assert abs((job.run_at - now).total_seconds()) < 5
    assert (job.priority, job.max_attempts, job.queue_name, job.flags) == (0, None, None, [])
    assert await count(conn, q) == 1


async def test_replace_restarts_the_retry_state_of_a_waiting_job(
    q: aioqueue.Queue, conn: asyncpg.Connection
) -> None:
    """A job waiting for its retry is replaced as a fresh job: attempts never exceed a lowered
    max_attempts and the stale error does not stick to the new payload."""
    first = await q.enqueue("r", {"v": 1}, unique_key="u", max_attempts=10)
    error = '{"message": "boom", "type": "RuntimeError", "traceback": "", "attempt": 4}'
    await set_row(conn, q, first.id, state="scheduled", attempts=4, error=error)
    await q.enqueue("r", {"v": 2}, unique_key="u", on_conflict="replace", max_attempts=2)
    job = await q.get_job(first.id)
    assert (job.attempts, job.max_attempts, job.error) == (0, 2, None)


async def test_replace_appends_list_payloads(q: aioqueue.Queue) -> None:
    first = await q.enqueue("batch", [{"i": 1}], unique_key="u", on_conflict="replace")
    await q.enqueue("batch", [{"i": 2}, {"i": 3}], unique_key="u", on_conflict="replace")
    assert (await q.get_job(first.id)).payload == [{"i": 1}, {"i": 2}, {"i": 3}]
    await q.enqueue("batch", [], unique_key="u", on_conflict="preserve_run_at")
    assert (await q.get_job(first.id)).payload == [{"i": 1}, {"i": 2}, {"i": 3}]
    # only when BOTH are lists: otherwise the new payload replaces the old one
    await q.enqueue("batch", {"x": 1}, unique_key="u", on_conflict="replace")
    assert (await q.get_job(first.id)).payload == {"x": 1}
    await q.enqueue("batch", [4], unique_key="u", on_conflict="replace")
    assert (await q.get_job(first.id)).payload == [4]
    # ignore never touches the payload
    await q.enqueue("batch", [5], unique_key="u", on_conflict="ignore")
    assert (await q.get_job(first.id)).payload == [4]


async def test_preserve_run_at_keeps_the_schedule_and_updates_the_rest(
    q: aioqueue.Queue, conn: asyncpg.Connection
) -> None:
    first = await q.enqueue("r", [1], unique_key="u", delay=3600, priority=1)
    before = await q.get_job(first.id)
    again = await q.enqueue(
        "r", [2], unique_key="u", on_conflict="preserve_run_at", priority=8, flags=["f"]
    )
    assert again == EnqueueResult(first.id, True)
    job = await q.get_job(first.id)
    assert (job.run_at, job.state) == (before.run_at, JobState.SCHEDULED)
    assert (job.payload, job.priority, job.flags) == ([1, 2], 8, ["f"])
    # a due job stays due even when the new spec asks for a delay
    due = await q.enqueue("r2", unique_key="u")
    await q.enqueue("r2", unique_key="u", on_conflict="preserve_run_at", delay=3600)
    assert (await q.get_job(due.id)).state is JobState.PENDING
    assert await count(conn, q) == 2


@pytest.mark.parametrize("mode", UPDATING_MODES)
async def test_running_match_releases_its_key_and_a_new_job_is_inserted(
    q: aioqueue.Queue, conn: asyncpg.Connection, mode: Any
) -> None:
    first = await q.enqueue("r", [1], unique_key="u", on_conflict=mode)
    await set_row(conn, q, first.id, state="running")
    new = await q.enqueue("r", [2], unique_key="u", on_conflict=mode, delay=30)
    assert not new.deduped and new.id != first.id
    old = await row(conn, q, first.id)
    assert (old["state_text"], old["unique_key"], old["payload"]) == ("running", None, "[1]")
    assert old["cancel_requested"] is (mode == "supersede")
    job = await q.get_job(new.id)
    assert (job.unique_key, job.payload, job.state) == ("u", [2], JobState.SCHEDULED)
    # the new job now holds the key: the next one is deduped onto it
    assert (await q.enqueue("r", [3], unique_key="u", on_conflict=mode)).id == new.id
    assert await count(conn, q) == 2


async def test_replace_of_a_running_job_keeps_an_earlier_cancel_request(
    q: aioqueue.Queue, conn: asyncpg.Connection
) -> None:
    first = await q.enqueue("r", unique_key="u")
    await set_row(conn, q, first.id, state="running", cancel_requested=True)
    new = await q.enqueue("r", unique_key="u", on_conflict="replace")
    assert new.id != first.id
    assert (await row(conn, q, first.id))["cancel_requested"] is True


# -- supersede --------------------------------------------------------------------------------


async def test_supersede_asks_the_running_job_to_stop(
    q: aioqueue.Queue, conn: asyncpg.Connection, listener: Notifications
) -> None:
    first = await q.enqueue("render", {"v": 1}, unique_key="d", on_conflict="supersede")
    await set_row(conn, q, first.id, state="running")
    new = await q.enqueue("render", {"v": 2}, unique_key="d", on_conflict="supersede")
    assert not new.deduped and new.id != first.id
    old = await row(conn, q, first.id)
    assert (old["cancel_requested"], old["unique_key"], old["state_text"]) == (
        True,
        None,
        "running",  # the worker ends the attempt; the producer only asks
    )
    assert (await q.get_job(new.id)).payload == {"v": 2}
    await listener.wait_for(lambda got: f"c:{first.id}" in got)


async def test_superseding_many_running_jobs_at_once_fits_in_notifications(
    q: aioqueue.Queue, conn: asyncpg.Connection, listener: Notifications
) -> None:
    """A NOTIFY payload of 8000 bytes or more fails the whole call: the cancel hints for a
    big batch are split, and together they name every superseded job."""
    s = q.config.schema
    await conn.execute(
        f"SELECT setval(pg_get_serial_sequence('\"{s}\".jobs', 'id'), 10000000000000)"
    )
    old = await q.enqueue_many([{"kind": "k", "unique_key": f"u{i}"} for i in range(1000)])
    await conn.execute(f"UPDATE \"{s}\".jobs SET state = 'running'")
    new = await q.enqueue_many(
        [{"kind": "k", "unique_key": f"u{i}", "on_conflict": "supersede"} for i in range(1000)]
    )
    assert not any(o.deduped for o in new)
    wanted = {o.id for o in old}

    def cancelled(got: list[str]) -> set[int]:
        return {int(i) for p in got if p.startswith("c:") for i in p[2:].split(",")}

    await listener.wait_for(lambda got: cancelled(got) >= wanted)
    assert all(len(p.encode()) < 8000 for p in listener.payloads)
    assert cancelled(listener.payloads) == wanted


async def test_replace_of_a_running_job_sends_no_cancel_notification(
    q: aioqueue.Queue, conn: asyncpg.Connection, listener: Notifications
) -> None:
    first = await q.enqueue("render", unique_key="d")
    await set_row(conn, q, first.id, state="running")
    await q.enqueue("render", unique_key="d", on_conflict="replace")
    await conn.execute("SELECT pg_notify($1, 'probe')", q.config.channel)
    await listener.wait_for(lambda got: "probe" in got)  # everything before it has arrived
    assert not [p for p in listener.payloads if p.startswith("c:")]


# -- max_delay --------------------------------------------------------------------------------


async def test_max_delay_debounces_with_a_ceiling(
    q: aioqueue.Queue, conn: asyncpg.Connection
) -> None:
    """Each replace moves run_at to now + delay, never past created_at + max_delay. The
    database clock is pinned through add_jobs' `now` argument."""
    s = q.config.schema
    t0 = dt.datetime(2030, 1, 1, tzinfo=dt.UTC)

    async def enqueue_at(seconds: float, payload: int) -> asyncpg.Record:
        spec = (
            f'[{{"kind": "d", "payload": [{payload}], "unique_key": "u", '
            f'"on_conflict": "replace", "delay": 10, "max_delay": 30}}]'
        )
        return await conn.fetchrow(
            f'SELECT * FROM "{s}".add_jobs($1::jsonb, now := $2)',
            spec,
            t0 + dt.timedelta(seconds=seconds),
        )

    first = await enqueue_at(0, 0)
    seen = []
    for at in (0, 5, 12, 25, 40):
        out = await enqueue_at(at, at)
        assert (out["id"], out["deduped"]) == (first["id"], True)
        job = await row(conn, q, first["id"])
        seen.append(((job["run_at"] - t0).total_seconds(), job["state_text"]))
    assert seen == [
        (10, "scheduled"),
        (15, "scheduled"),
        (22, "scheduled"),
        (30, "scheduled"),  # capped: created_at + max_delay
        (30, "pending"),  # the ceiling has passed: due at once
    ]
    assert (await q.get_job(first["id"])).payload == [0, 0, 5, 12, 25, 40]


async def test_max_delay_through_the_python_api(
    q: aioqueue.Queue, conn: asyncpg.Connection
) -> None:
    first = await q.enqueue("d", [1], unique_key="u", on_conflict="replace", delay=60, max_delay=90)
    created = (await q.get_job(first.id)).created_at
    job = await q.get_job(first.id)
    assert 59 <= (job.run_at - created).total_seconds() <= 61
    await q.enqueue("d", [2], unique_key="u", on_conflict="replace", delay=60, max_delay=90)
    moved = await q.get_job(first.id)
    assert moved.run_at >= job.run_at  # pushed later
    # pretend the first enqueue was 80 s ago: the next replace may push only to +90 s
    await set_row(conn, q, first.id, created_at=created - dt.timedelta(seconds=80))
    await q.enqueue("d", [3], unique_key="u", on_conflict="replace", delay=60, max_delay=90)
    capped = await q.get_job(first.id)
    ceiling = created - dt.timedelta(seconds=80) + dt.timedelta(seconds=90)
    assert capped.run_at == ceiling
    assert capped.payload == [1, 2, 3]
    # and a first enqueue never waits past max_delay either
    short = await q.enqueue("d2", unique_key="u", on_conflict="replace", delay=600, max_delay=5)
    job = await q.get_job(short.id)
    assert (job.run_at - job.created_at).total_seconds() == 5


# -- concurrency (RELIABILITY F1) -------------------------------------------------------------

# (mode, state of an existing job with the key, or None)
CONCURRENT_CASES = [(mode, None) for mode in MODES] + [
    ("ignore", "running"),
    ("unsafe_dedupe", "running"),
    ("unsafe_dedupe", "completed"),
    ("unsafe_dedupe", "failed"),
    ("replace", "running"),
    ("preserve_run_at", "running"),
    ("supersede", "running"),
    ("ignore", "completed"),
]


@pytest.mark.parametrize(("mode", "existing"), CONCURRENT_CASES)
async def test_fifty_concurrent_duplicates_give_one_job(
    q20: aioqueue.Queue, conn: asyncpg.Connection, mode: Any, existing: str | None
) -> None:
    q = q20
    old = None
    if existing is not None:
        old = (await q.enqueue("dup", [-1], unique_key="same")).id
        await set_row(conn, q, old, state=existing)
    outs = await asyncio.gather(
        *[q.enqueue("dup", [i], unique_key="same", on_conflict=mode) for i in range(50)]
    )
    assert all(isinstance(o, EnqueueResult) and isinstance(o.id, int) for o in outs)
    ids = {o.id for o in outs}
    assert len(ids) == 1, ids
    (job_id,) = ids
    reuses_old = old is not None and (
        (mode == "unsafe_dedupe" and existing != "completed")
        or (mode == "ignore" and existing == "running")
    )
    if reuses_old:
        assert job_id == old
        assert sum(o.deduped for o in outs) == 50
        assert await count(conn, q) == 1
    else:
        assert job_id != old
        assert sum(o.deduped for o in outs) == 49
        assert [o.deduped for o in outs].count(False) == 1
        assert await count(conn, q, f"id <> {old or 0}") == 1
    active = await count(
        conn, q, "unique_key = 'same' AND state IN ('pending', 'scheduled', 'running')"
    )
    assert active == (0 if existing == "failed" and reuses_old else 1)  # I5
    if mode in UPDATING_MODES and not reuses_old:
        # every replace landed on the one job: lists appended, none lost
        assert sorted((await q.get_job(job_id)).payload) == list(range(50))


@pytest.mark.parametrize("mode", MODES)
async def test_duplicates_inside_one_enqueue_many(
    q: aioqueue.Queue, conn: asyncpg.Connection, mode: Any
) -> None:
    outs = await q.enqueue_many(
        [
            {"kind": "dup", "payload": [i], "unique_key": "same", "on_conflict": mode}
            for i in range(50)
        ]
    )
    assert len(outs) == 50
    assert outs[0].deduped is False
    assert all(o == EnqueueResult(outs[0].id, True) for o in outs[1:])
    assert await count(conn, q) == 1
    payload = (await q.get_job(outs[0].id)).payload
    assert payload == (list(range(50)) if mode in UPDATING_MODES else [0])


async def test_enqueue_many_mixes_modes_keys_and_kinds_in_input_order(
    q: aioqueue.Queue, conn: asyncpg.Connection
) -> None:
    existing = await q.enqueue("a", [0], unique_key="run")
    await set_row(conn, q, existing.id, state="running")
    done = await q.enqueue("a", unique_key="done")
    await set_row(conn, q, done.id, state="failed")
    outs = await q.enqueue_many(
        [
            {"kind": "a", "payload": 1, "unique_key": "x"},  # 0 new
            {"kind": "a", "payload": 2},  # 1 new, no key
            {"kind": "a", "payload": 3, "unique_key": "x"},  # 2 -> 0
            aioqueue.JobSpec(kind="b", payload=4, unique_key="x"),  # 3 new: other kind
            {"kind": "a", "payload": [5], "unique_key": "y", "on_conflict": "replace"},  # 4 new
            {"kind": "a", "payload": [6], "unique_key": "y", "on_conflict": "replace"},  # 5 -> 4
            {"kind": "a", "payload": [7], "unique_key": "run", "on_conflict": "replace"},  # 6 new
            {"kind": "a", "payload": [8], "unique_key": "run"},  # 7 -> 6
            {"kind": "a", "unique_key": "done", "on_conflict": "unsafe_dedupe"},  # 8 -> done
            {"kind": "a", "payload": 9},  # 9 new, no key
            {"kind": "a", "unique_key": "done"},  # 10 new: the key is free for ignore
        ]
    )
    assert [o.deduped for o in outs] == [
        False, False, True, False, False, True, False, True, True, False, False,
    ]  # fmt: skip
    assert outs[2].id == outs[0].id
    assert outs[5].id == outs[4].id
    assert outs[7].id == outs[6].id != existing.id
    assert outs[8].id == done.id
    assert outs[10].id != done.id
    assert len({o.id for o in outs}) == 8
    assert (await q.get_job(outs[4].id)).payload == [5, 6]
    assert (await q.get_job(outs[6].id)).payload == [7]
    assert (await q.get_job(outs[1].id)).payload == 2
    assert (await q.get_job(outs[9].id)).payload == 9
    assert (await row(conn, q, existing.id))["unique_key"] is None


@pytest.mark.parametrize("mode", MODES)
async def test_concurrent_enqueue_many_with_overlapping_keys_do_not_deadlock(
    q20: aioqueue.Queue, conn: asyncpg.Connection, mode: Any
) -> None:
    """Calls naming the same keys in different orders: each key is locked in one global order,
    so no call fails with a deadlock, and each key ends up with exactly one job."""
    specs = [
        {"kind": k, "payload": [i], "unique_key": f"key-{i % 40}", "on_conflict": mode}
        for i, k in enumerate(["a", "b"] * 40)
    ]
    calls = [specs if n % 2 else specs[::-1] for n in range(8)]
    results = await asyncio.gather(*[q20.enqueue_many(c) for c in calls])
    assert all(len(r) == 80 for r in results)
    by_key: dict[tuple[str, str], set[int]] = {}
    for call, outs in zip(calls, results, strict=True):
        for spec, out in zip(call, outs, strict=True):
            by_key.setdefault((spec["kind"], spec["unique_key"]), set()).add(out.id)
    assert all(len(ids) == 1 for ids in by_key.values())
    assert await count(conn, q20) == len(by_key)
