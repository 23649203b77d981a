"""A handler ends its attempt on purpose: Snooze (again later, attempt not counted), Fail (no
retries), Cancel (cancelled). Through a real worker and database."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest

import aioqueue
from tests.support.worker_helpers import FAST, Recorder


async def test_snooze_fail_and_cancel(q: aioqueue.Queue) -> None:
    tasks = aioqueue.Tasks()
    calls: dict[str, int] = {}

    @tasks.task("snooze", max_attempts=1)
    async def snooze(ctx: aioqueue.JobContext, payload: Any) -> str:
        calls["snooze"] = calls.get("snooze", 0) + 1
        if calls["snooze"] <= 3:
            raise aioqueue.Snooze(0)  # max_attempts=1: only an uncounted attempt can repeat
        return f"attempts {ctx.job.attempts}"

    @tasks.task("fail", max_attempts=10)
    async def fail(ctx: aioqueue.JobContext, payload: Any) -> None:
        raise aioqueue.Fail("bad input: no such user")

    @tasks.task("cancel")
    async def cancel(ctx: aioqueue.JobContext, payload: Any) -> None:
        raise aioqueue.Cancel("the order is gone")

    @tasks.task("later")
    async def later(ctx: aioqueue.JobContext, payload: Any) -> None:
        raise aioqueue.Snooze(3600)

    rec = Recorder()
    ids = {k: (await q.enqueue(k, {})).id for k in ("snooze", "fail", "cancel", "later")}
    await aioqueue.Worker(q, tasks, hooks=[rec], **FAST).run(until_empty=True)

    snoozed = await q.get_job(ids["snooze"])
    assert (snoozed.state, snoozed.result, snoozed.attempts) == (
        aioqueue.JobState.COMPLETED, "attempts 1", 1,
    )  # fmt: skip
    assert len(rec.of("snoozed", ids["snooze"])) == 3
    failed = await q.get_job(ids["fail"])
    assert failed.state is aioqueue.JobState.FAILED and failed.attempts == 1
    assert failed.error is not None and failed.error.message == "bad input: no such user"
    cancelled = await q.get_job(ids["cancel"])
    assert cancelled.state is aioqueue.JobState.CANCELLED
    assert cancelled.error is not None and cancelled.error.message == "the order is gone"
    waiting = await q.get_job(ids["later"])
    assert waiting.state is aioqueue.JobState.SCHEDULED and waiting.attempts == 0
    due_in = waiting.run_at - dt.datetime.now(dt.UTC)
    assert dt.timedelta(minutes=59) < due_in <= dt.timedelta(hours=1)


@pytest.mark.parametrize("bad", [-1, float("nan"), float("inf"), True, "5"])
def test_snooze_refuses_bad_seconds(bad: Any) -> None:
    with pytest.raises(ValueError, match="Snooze seconds"):
        aioqueue.Snooze(bad)
