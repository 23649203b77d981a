"""Cron: exactly one job per slot however many workers run, backfill, timezones and DST."""

from __future__ import annotations

import datetime as dt
import zoneinfo
from typing import Any

import anyio
import asyncpg
import pytest

import aioqueue
from aioqueue._maintenance.scheduler import Scheduler
from tests.support.worker_helpers import running_worker

UTC = dt.UTC
T0 = dt.datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


class FakeClock:
    def __init__(self, now: dt.datetime) -> None:
        self.now = now

    def __call__(self) -> dt.datetime:
        return self.now


def _scheduler(q: aioqueue.Queue, tasks: aioqueue.Tasks, clock: FakeClock) -> Scheduler:
    return Scheduler(q.pool, q.queries, tasks.crons, clock=clock)


async def _occurrences(conn: asyncpg.Connection, schema: str, kind: str) -> list[Any]:
    return await conn.fetch(
        f'SELECT id, run_at, rescheduled_from FROM "{schema}".jobs WHERE kind = $1 ORDER BY id',
        kind,
    )


async def test_three_workers_enqueue_each_slot_exactly_once(
    q: aioqueue.Queue, conn: asyncpg.Connection
) -> None:
    tasks = aioqueue.Tasks()
    tasks.cron("* * * * *", "tick", name="every-minute")
    clocks = [FakeClock(T0) for _ in range(3)]
    schedulers = [_scheduler(q, tasks, c) for c in clocks]
    for s in schedulers:
        await s.start()
    for minute in range(1, 61):
        for c in clocks:
            c.now = T0 + dt.timedelta(minutes=minute, seconds=1)
        async with anyio.create_task_group() as tg:
            for s in schedulers:
                tg.start_soon(s.tick)
    rows = await _occurrences(conn, q.config.schema, "tick")
    slots = [r["run_at"] for r in rows]
    assert slots == [T0 + dt.timedelta(minutes=m) for m in range(1, 61)]
    # lineage: each occurrence points at the previous one
    assert rows[0]["rescheduled_from"] is None
    assert [r["rescheduled_from"] for r in rows[1:]] == [r["id"] for r in rows[:-1]]

    # one worker's clock moves back an hour: nothing is enqueued again
    clocks[1].now = T0 + dt.timedelta(minutes=1)
    late = _scheduler(q, tasks, clocks[1])
    await late.start()
    clocks[1].now = T0 + dt.timedelta(minutes=59, seconds=30)
    assert await late.tick() == 0
    assert len(await _occurrences(conn, q.config.schema, "tick")) == 60


async def test_backfill_window_is_honoured_on_start(
    q: aioqueue.Queue, conn: asyncpg.Connection
) -> None:
    tasks = aioqueue.Tasks()
    tasks.cron("*/10 * * * *", "report", name="with-backfill", backfill=3600)
    tasks.cron("*/10 * * * *", "report.nofill", name="no-backfill")
    clock = FakeClock(T0)
    first = _scheduler(q, tasks, clock)
    await first.start()
    clock.now = T0 + dt.timedelta(minutes=10)
    await first.tick()  # both crons enqueue 12:10 and remember it
    # all workers down for 3 hours; then one starts
    clock.now = T0 + dt.timedelta(hours=3, minutes=5)
    second = _scheduler(q, tasks, clock)
    await second.start()
    await second.tick()
    filled = [r["run_at"] for r in await _occurrences(conn, q.config.schema, "report")]
    # 12:10, then the missed slots of the last hour only: 14:10 .. 15:00
    expected_backfill = [T0 + dt.timedelta(hours=2, minutes=10 * k) for k in range(1, 7)]
    assert filled == [T0 + dt.timedelta(minutes=10), *expected_backfill]
    skipped = [r["run_at"] for r in await _occurrences(conn, q.config.schema, "report.nofill")]
    assert skipped == [T0 + dt.timedelta(minutes=10)]


async def test_timezone_and_dst(q: aioqueue.Queue, conn: asyncpg.Connection) -> None:
    tasks = aioqueue.Tasks()
    tasks.cron("0 9 * * *", "digest", name="nine-am-ny", timezone="America/New_York")
    start = dt.datetime(2026, 3, 6, 0, 0, tzinfo=UTC)  # DST starts Sunday 2026-03-08 in NY
    clock = FakeClock(start)
    scheduler = _scheduler(q, tasks, clock)
    await scheduler.start()
    for day in range(1, 6):
        clock.now = start + dt.timedelta(days=day)
        await scheduler.tick()
    slots = [r["run_at"] for r in await _occurrences(conn, q.config.schema, "digest")]
    assert [s.astimezone(UTC).hour for s in slots] == [14, 14, 13, 13, 13]
    ny = [s.astimezone(zoneinfo.ZoneInfo("America/New_York")) for s in slots]
    assert all(s.hour == 9 and s.minute == 0 for s in ny)
    assert len({s.date() for s in ny}) == 5


async def test_future_slots_are_refused_by_the_database_clock(
    q: aioqueue.Queue, conn: asyncpg.Connection
) -> None:
    far = dt.datetime.now(UTC) + dt.timedelta(hours=2)
    job_id = await q.queries.cron_enqueue(
        conn, name="ahead", slot=far, spec='{"kind": "x"}', now=None
    )
    assert job_id is None


def test_cron_declarations_are_validated() -> None:
    tasks = aioqueue.Tasks()
    with pytest.raises(aioqueue.ConfigurationError, match="cron expression"):
        tasks.cron("61 * * * *", "x")
    with pytest.raises(aioqueue.ConfigurationError, match="timezone"):
        tasks.cron("* * * * *", "x", timezone="Mars/Olympus")
    tasks.cron("* * * * *", "x", name="dup")
    with pytest.raises(aioqueue.ConfigurationError, match="already registered"):
        tasks.cron("*/5 * * * *", "x", name="dup")


async def test_worker_runs_cron_jobs(q: aioqueue.Queue) -> None:
    tasks = aioqueue.Tasks()
    tasks.cron("* * * * * *", "every.second", name="every-second")  # seconds field last

    @tasks.task("every.second")
    async def every_second(ctx: aioqueue.JobContext, payload: Any) -> str:
        return "tick"

    async with running_worker(q, tasks) as (_, rec):
        events = await rec.wait_for("completed", count=2, timeout=10)
    second = await q.get_job(events[1].job_id or 0)
    assert second.rescheduled_from == events[0].job_id
