"""Flow control (issue 20): global limits per kind and key, fairness, rate limits, pause."""

from __future__ import annotations

from typing import Any

import aioqueue
from tests.support.flow import Stamps, ledger_tasks
from tests.support.worker_helpers import running_worker


def max_overlap(intervals: list[tuple[float, float]]) -> int:
    """The most intervals open at one instant (an end at t closes before a start at t)."""
    points = sorted([(s, 1) for s, _ in intervals] + [(e, -1) for _, e in intervals])
    best = now = 0
    for _, d in points:
        now += d
        best = max(best, now)
    return best


async def test_kind_concurrency_holds_across_workers(q: aioqueue.Queue) -> None:
    stamps = Stamps()
    tasks = ledger_tasks("lim", stamps, concurrency=3)
    await q.enqueue_many([{"kind": "lim", "payload": {}} for _ in range(60)])
    async with running_worker(q, tasks, concurrency=20), running_worker(q, tasks, concurrency=20):
        await stamps.wait(60)
    assert max_overlap([(s, e) for _, s, e in stamps]) <= 3
    flow = await q.limits()
    assert [(k.kind, k.concurrency) for k in flow.kinds] == [("lim", 3)]


async def test_key_concurrency_and_fair_rotation(q: aioqueue.Queue) -> None:
    """One key with a big backlog enqueued first does not starve 30 small keys: keys take turns
    (each turn up to key_concurrency jobs), so every small key starts within one rotation."""
    stamps = Stamps()
    tasks = ledger_tasks("fair", stamps, key_concurrency=2)
    await q.enqueue_many(
        [aioqueue.JobSpec(kind="fair", payload={"key": "big"}, concurrency_key="big")] * 300
    )
    small = [f"k{i:02}" for i in range(30)]
    await q.enqueue_many(
        [
            aioqueue.JobSpec(kind="fair", payload={"key": k}, concurrency_key=k)
            for k in small
            for _ in range(2)
        ]
    )
    async with running_worker(q, tasks, concurrency=10):
        await stamps.wait(360)
    for key in ["big", *small]:
        assert max_overlap([(s, e) for k, s, e in stamps if k == key]) <= 2, key
    order = [k for k, _, _ in sorted(stamps, key=lambda t: t[1])]
    last_small = max(i for i, k in enumerate(order) if k != "big")
    # 60 small jobs; the big key gets at most 2 per rotation of 31 keys: bounded well under 300
    assert last_small < 60 + 2 * 10, order[: last_small + 1]


async def test_pause_and_resume_kind_and_queue(q: aioqueue.Queue) -> None:
    stamps = Stamps()
    tasks = ledger_tasks("p", stamps)
    await q.pause("p")
    await q.pause(queue_name="serial")
    a = await q.enqueue("p", {"key": "a"})
    other = aioqueue.Tasks()

    @other.task("q")
    async def in_queue(ctx: aioqueue.JobContext, payload: Any) -> None:
        stamps.add(("queue", 0.0, 0.0))

    tasks_all = aioqueue.Tasks()
    tasks_all._tasks = {**tasks._tasks, **other._tasks}
    b = await q.enqueue("q", {}, queue_name="serial")
    async with running_worker(q, tasks_all, concurrency=5) as (_, rec):
        c = await q.enqueue("q", {})
        await rec.wait_for("completed", c.id)
        assert (await q.get_job(a.id)).state == "pending"
        assert (await q.get_job(b.id)).state == "pending"
        flow = await q.limits()
        assert flow.paused_queues == ["serial"]
        assert [(k.kind, k.paused) for k in flow.kinds] == [("p", True)]
        await q.resume("p")
        await q.resume(queue_name="serial")
        await rec.wait_for("completed", a.id)
        await rec.wait_for("completed", b.id)


async def test_rate_limit_is_a_token_bucket(q: aioqueue.Queue) -> None:
    """rate_limit=(5, 1.0): a burst of 5, then one start per 0.2 s: for any two starts i < j
    (in start order), j - i + 1 <= 5 + 5 * (t_j - t_i). Started times are the database's."""
    stamps = Stamps()
    tasks = ledger_tasks("rl", stamps, rate_limit=(5, 1.0))
    ids = [r.id for r in await q.enqueue_many([{"kind": "rl", "payload": {}}] * 15)]
    async with running_worker(q, tasks, concurrency=10, poll_interval=0.05):
        await stamps.wait(15)
    jobs = [await q.get_job(i) for i in ids]
    times = sorted(j.started_at.timestamp() for j in jobs if j.started_at)
    assert len(times) == 15
    for i in range(15):
        for j in range(i + 1, 15):
            assert j - i + 1 <= 5 + 5 * (times[j] - times[i]) + 0.1, (i, j, times)
    # and it did not wait much longer than the bucket requires (10 refills of 0.2 s)
    assert times[-1] - times[0] >= 10 * 0.2 - 0.1


async def test_set_limits_validates_and_clears(q: aioqueue.Queue) -> None:
    import pytest

    with pytest.raises(aioqueue.ConfigurationError, match="concurrency"):
        await q.set_limits("x", concurrency=-1)
    with pytest.raises(aioqueue.ConfigurationError, match="rate_limit"):
        await q.set_limits("x", rate_limit=(0, 1))
    await q.set_limits("x", concurrency=4, key_concurrency=2, rate_limit=(10, 60))
    (k,) = (await q.limits()).kinds
    assert (k.concurrency, k.key_concurrency, k.rate_limit) == (4, 2, (10, 60.0))
    await q.set_limits("x", concurrency=None)
    (k,) = (await q.limits()).kinds
    assert (k.concurrency, k.key_concurrency) == (None, 2)
    assert await q.reset_limits("x")
    assert (await q.limits()).kinds == []


async def test_declared_limits_do_not_override_run_time_ones(q: aioqueue.Queue) -> None:
    stamps = Stamps()
    await q.set_limits("d", concurrency=7)
    tasks = ledger_tasks("d", stamps, concurrency=2)
    async with running_worker(q, tasks):
        pass
    (k,) = (await q.limits()).kinds
    assert k.concurrency == 7


async def test_max_depth_raises_queue_full_all_or_nothing(q: aioqueue.Queue) -> None:
    import pytest

    await q.set_max_depth("bp", 5)
    await q.enqueue_many([{"kind": "bp", "payload": {}}] * 3)
    with pytest.raises(aioqueue.QueueFull) as info:
        await q.enqueue_many([{"kind": "bp", "payload": {}}] * 3)  # 6 > 5: none written
    assert (info.value.kind, info.value.max_depth) == ("bp", 5)
    assert isinstance(info.value, aioqueue.AioqueueError)
    await q.enqueue("bp", {})
    await q.enqueue("bp", {}, priority=1)
    with pytest.raises(aioqueue.QueueFull):
        await q.enqueue("bp", {})
    await q.enqueue("other", {})  # other kinds are not limited
    counts = await q.pool.fetchval(
        f"SELECT count(*) FROM \"{q.config.schema}\".jobs WHERE kind = 'bp'"
    )
    assert counts == 5
    await q.set_max_depth("bp", None)
    await q.enqueue("bp", {})
    stats = await q.stats()
    assert stats.flow is not None and stats.flow.kinds[0].max_depth is None


async def test_concurrency_key_through_every_enqueue_path(q: aioqueue.Queue) -> None:
    """enqueue (plain and with a unique_key), enqueue_many (plain and dedupe), SQL add_jobs."""
    s = q.config.schema
    a = await q.enqueue("k", {}, concurrency_key="t1")
    b = await q.enqueue("k", {}, concurrency_key="t2", unique_key="u1")
    c, d = await q.enqueue_many(
        [
            aioqueue.JobSpec(kind="k", concurrency_key="t3"),
            aioqueue.JobSpec(kind="k", concurrency_key="t4", unique_key="u2"),
        ]
    )
    add_jobs = f'SELECT id FROM "{s}".add_jobs($1::jsonb)'
    (e,) = await q.pool.fetch(add_jobs, '[{"kind": "k", "concurrency_key": "t5"}]')
    dup = await q.enqueue("k", {}, concurrency_key="other", unique_key="u1")
    assert dup.deduped and dup.id == b.id
    rows = await q.pool.fetch(f'SELECT id, concurrency_key FROM "{s}".jobs')
    keys = {r["id"]: r["concurrency_key"] for r in rows}
    assert [keys[i] for i in (a.id, b.id, c.id, d.id, e["id"])] == ["t1", "t2", "t3", "t4", "t5"]
    import asyncpg
    import pytest

    with pytest.raises(asyncpg.InvalidParameterValueError, match="concurrency_key"):
        await q.pool.fetch(add_jobs, '[{"kind": "k", "concurrency_key": 5}]')
    with pytest.raises(aioqueue.InvalidJobError, match="concurrency_key"):
        await q.enqueue("k", {}, concurrency_key="")
