"""enqueue_many: any number of specs in ONE statement, outcomes in input order."""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import AsyncIterator, Callable
from typing import Any

import anyio
import asyncpg
import pytest

import aioqueue
from aioqueue import EnqueueResult, JobSpec, JobState

pytestmark = pytest.mark.anyio


class Counted:
    """A queue on a one-connection pool whose every statement is logged, plus spies on the
    pool's ``fetch`` and on the statement methods of ``Queries`` that enqueue."""

    METHODS = ("jobs_add", "jobs_insert_bare", "jobs_insert_many", "job_insert_now")

    def __init__(
        self, q: aioqueue.Queue, statements: list[str], monkeypatch: pytest.MonkeyPatch
    ) -> None:
        self.q = q
        self.statements = statements
        self.calls: list[str] = []
        self.fetch_calls = 0
        fetch = asyncpg.Pool.fetch

        def spy(name: str, method: Any) -> Any:
            async def wrapper(*args: Any, **kwargs: Any) -> Any:
                self.calls.append(name)
                return await method(*args, **kwargs)

            return wrapper

        for name in self.METHODS:
            if hasattr(q.queries, name):
                monkeypatch.setattr(q.queries, name, spy(name, getattr(q.queries, name)))

        async def spy_fetch(pool: asyncpg.Pool, *args: Any, **kwargs: Any) -> Any:
            if pool is q.pool:
                self.fetch_calls += 1
            return await fetch(pool, *args, **kwargs)

        monkeypatch.setattr(asyncpg.Pool, "fetch", spy_fetch)  # Pool has __slots__

    async def settle_log(self) -> list[str]:
        # asyncpg delivers query-log records with loop.call_soon: one loop turn flushes them
        await asyncio.sleep(0)
        return self.statements

    def reset(self) -> None:
        self.statements.clear()
        self.calls.clear()
        self.fetch_calls = 0


@pytest.fixture
async def counted(dsn: str, schema: str, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[Counted]:
    statements: list[str] = []
    q = await aioqueue.Queue.connect(dsn, schema=schema, pool_min_size=1, pool_max_size=1)
    async with q.pool.acquire() as only:  # the logger stays on the pool's one connection
        only.add_query_logger(lambda record: statements.append(record.query))
    counted = Counted(q, statements, monkeypatch)
    await counted.settle_log()
    counted.reset()
    try:
        yield counted
    finally:
        await q.pool.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
        await q.close()


async def payload_by_id(conn: asyncpg.Connection, schema: str) -> dict[int, Any]:
    rows = await conn.fetch(f"SELECT id, payload->'i' AS i FROM \"{schema}\".jobs")
    return {r["id"]: None if r["i"] is None else int(r["i"]) for r in rows}


async def test_ten_thousand_specs_are_one_statement_with_outcomes_in_order(
    counted: Counted, conn: asyncpg.Connection
) -> None:
    q = counted.q
    outs = await q.enqueue_many([{"kind": "bulk", "payload": {"i": i}} for i in range(10_000)])
    statements = await counted.settle_log()
    assert len(counted.calls) == 1, counted.calls
    assert counted.fetch_calls == 1
    assert len(statements) == 1, statements  # one statement reached the server
    assert f'"{q.config.schema}".jobs' in statements[0] or "add_jobs" in statements[0]
    assert len(outs) == 10_000
    assert not any(o.deduped for o in outs)
    stored = await payload_by_id(conn, q.config.schema)
    assert [stored[o.id] for o in outs] == list(range(10_000))  # outcome i is spec i


async def test_ten_thousand_keyed_specs_with_duplicates_are_one_statement(
    counted: Counted, conn: asyncpg.Connection
) -> None:
    q = counted.q
    specs: list[Any] = []
    for i in range(10_000):
        key = f"k{(i * 7919) % 2_500}"  # every key four times, scattered
        if i % 3:
            specs.append({"kind": "bulk", "payload": {"i": i}, "unique_key": key})
        else:
            specs.append(JobSpec(kind="bulk", payload={"i": i}, unique_key=key))
    outs = await q.enqueue_many(specs)
    assert len(await counted.settle_log()) == 1
    assert counted.calls == ["jobs_add"]  # keyed specs: every on_conflict mode is in add_jobs
    assert counted.fetch_calls == 1
    first_of: dict[str, EnqueueResult] = {}
    for i, (spec, out) in enumerate(zip(specs, outs, strict=True)):
        key = spec["unique_key"] if isinstance(spec, dict) else spec.unique_key
        if key in first_of:
            assert out == EnqueueResult(first_of[key].id, True), i
        else:
            assert not out.deduped, i
            first_of[key] = out
    assert len(first_of) == 2_500
    stored = await payload_by_id(conn, q.config.schema)
    assert len(stored) == 2_500
    # ignore mode: each job keeps the payload of the first spec with its key
    for i, out in enumerate(outs):
        if not out.deduped:
            assert stored[out.id] == i


async def test_empty_input_returns_empty_list_without_a_statement(counted: Counted) -> None:
    q = counted.q
    assert await q.enqueue_many([]) == []
    assert await q.enqueue_many(()) == []
    assert await q.enqueue_many(spec for spec in []) == []
    assert await counted.settle_log() == []
    assert counted.calls == [] and counted.fetch_calls == 0


@pytest.mark.parametrize("keyed", [False, True], ids=["insert", "add_jobs"])
async def test_dict_specs_and_jobspecs_mixed(
    q: aioqueue.Queue, conn: asyncpg.Connection, keyed: bool
) -> None:
    run_at = dt.datetime(2031, 5, 6, 7, 8, 9, tzinfo=dt.timezone(dt.timedelta(hours=2)))
    specs: list[Any] = [
        {"kind": "send.email", "payload": {"id": 1}},
        JobSpec(kind="rebuild.thumb", payload={"id": 7}, delay=5),
        {"kind": "no.payload"},
        JobSpec(
            kind="full",
            payload=[1, 2],
            run_at=run_at,
            priority=-3,
            max_attempts=4,
            queue_name="user:42",
            flags=["api:stripe"],
        ),
        {
            "kind": "full.dict",
            "payload": None,
            "delay": dt.timedelta(minutes=2),
            "priority": 32767,
            "max_attempts": 1,
            "queue_name": "q",
            "flags": ("a", "b"),
        },
    ]
    if keyed:  # a unique_key sends the whole call through add_jobs
        specs[4].update(unique_key="u1", on_conflict="replace", max_delay=600)
    now = await conn.fetchval("SELECT now()")
    outs = await q.enqueue_many(iter(specs))  # any iterable
    assert [o.deduped for o in outs] == [False] * 5
    jobs = [await q.get_job(o.id) for o in outs]
    assert [j.kind for j in jobs] == [
        "send.email",
        "rebuild.thumb",
        "no.payload",
        "full",
        "full.dict",
    ]
    assert [j.payload for j in jobs] == [{"id": 1}, {"id": 7}, {}, [1, 2], None]
    assert [j.state for j in jobs] == [
        JobState.PENDING,
        JobState.SCHEDULED,
        JobState.PENDING,
        JobState.SCHEDULED,
        JobState.SCHEDULED,
    ]
    assert 4 <= (jobs[1].run_at - now).total_seconds() <= 10
    full = jobs[3]
    assert full.run_at == run_at
    assert (full.priority, full.max_attempts, full.queue_name, full.flags) == (
        -3,
        4,
        "user:42",
        ["api:stripe"],
    )
    d = jobs[4]
    assert (d.priority, d.max_attempts, d.queue_name, d.flags, d.unique_key) == (
        32767,
        1,
        "q",
        ["a", "b"],
        "u1" if keyed else None,
    )
    assert 119 <= (d.run_at - now).total_seconds() <= 125
    assert jobs[0].max_attempts is None  # the task's default applies at the first claim


async def test_one_wake_up_per_call(q: aioqueue.Queue, conn: asyncpg.Connection) -> None:
    assert q.dsn is not None
    got: list[str] = []
    changed = asyncio.Event()

    def on(*args: Any) -> None:
        got.append(args[3])
        changed.set()

    async def wait_for(predicate: Callable[[], bool]) -> None:
        with anyio.fail_after(5):
            while not predicate():
                changed.clear()
                await changed.wait()

    listener = await asyncpg.connect(q.dsn)
    await listener.add_listener(q.config.channel, on)
    try:
        await q.enqueue_many([{"kind": "now", "payload": i} for i in range(50)])
        await q.enqueue_many(
            [{"kind": "later", "delay": 120}, {"kind": "later", "delay": 60, "unique_key": "u"}]
        )
        await q.enqueue_many([{"kind": "keyless", "delay": 90}, {"kind": "keyless", "delay": 30}])
        await conn.execute("SELECT pg_notify($1, 'probe')", q.config.channel)
        await wait_for(lambda: "probe" in got)
        assert got[0] == ""  # due work: one plain wake-up for 50 jobs
        assert len(got) == 4 and got[1].startswith("t:")  # only future jobs: their earliest
        for hint, kind in ((got[1], "later"), (got[2], "keyless")):  # add_jobs, plain INSERT
            earliest = min(j.run_at for j in await q.list_jobs(kind=kind))
            assert float(hint[2:]) == pytest.approx(earliest.timestamp(), abs=1e-3)
    finally:
        await listener.close()


async def test_specs_of_a_known_kind_are_still_checked_in_full(
    q: aioqueue.Queue, conn: asyncpg.Connection
) -> None:
    """Plain {"kind", "payload"} dicts of an already validated kind take a shorter path; every
    other spec, and every error, goes through the full checks, naming the spec's index."""
    await q.enqueue_many([{"kind": "known", "payload": 1}])  # validated once
    with pytest.raises(aioqueue.PayloadError, match=r"^job spec 1: payload at \$ is nan"):
        await q.enqueue_many([{"kind": "known"}, {"kind": "known", "payload": float("nan")}])
    with pytest.raises(aioqueue.InvalidJobError, match=r"^job spec 2: colour: unknown"):
        await q.enqueue_many([{"kind": "known"}, {"kind": "known"}, {"kind": "known", "colour": 1}])
    with pytest.raises(aioqueue.InvalidJobError, match=r"^job spec 1: priority: must be between"):
        await q.enqueue_many([{"kind": "known"}, {"kind": "known", "priority": 1 << 20}])
    count = f'SELECT count(*) FROM "{q.config.schema}".jobs'
    assert await conn.fetchval(count) == 1  # nothing of the failed calls was written
    outs = await q.enqueue_many([{"kind": "known"}, {"kind": "known", "payload": None}])
    assert [(await q.get_job(o.id)).payload for o in outs] == [{}, None]


async def test_bare_specs_take_every_default_and_notify_once(
    q: aioqueue.Queue, conn: asyncpg.Connection
) -> None:
    """Specs that are only {kind, payload} go through the bare INSERT: each column but those two
    takes its default (due now), ids follow input order, and one notification wakes workers."""
    s = q.config.schema
    heard: list[str] = []
    notified = anyio.Event()

    def listener(*args: Any) -> None:
        heard.append(args[3])
        notified.set()

    await conn.add_listener(aioqueue.config.channel_for(s), listener)
    first = await q.enqueue_many([{"kind": "bare", "payload": {"i": 0}}, {"kind": "bare"}])
    with anyio.fail_after(5):
        await notified.wait()
    notified = anyio.Event()
    more = await q.enqueue_many([{"kind": "bare", "payload": {"i": i}} for i in range(1, 4)])
    with anyio.fail_after(5):
        await notified.wait()
    assert heard == ["", ""]  # one per call: due now
    ids = [o.id for o in first + more]
    assert ids == sorted(ids)
    rows = await conn.fetch(
        f"""SELECT id, state::text AS state, priority, run_at = created_at AS due_at_creation,
                   max_attempts, attempts, flags, queue_name, unique_key, payload::text AS payload
            FROM "{s}".jobs ORDER BY id"""
    )
    assert [r["id"] for r in rows] == ids
    assert [r["payload"] for r in rows] == ['{"i": 0}', "{}", '{"i": 1}', '{"i": 2}', '{"i": 3}']
    for r in rows:
        assert (r["state"], r["priority"], r["due_at_creation"]) == ("pending", 0, True)
        assert (r["max_attempts"], r["attempts"], r["flags"]) == (None, 0, [])
        assert (r["queue_name"], r["unique_key"]) == (None, None)
