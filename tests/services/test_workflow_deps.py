"""Dependencies between jobs (issue 21): readiness set by the statement settling the last parent,
failure propagation both ways, depends_on inside one enqueue_many, tx= rollback, SQL add_jobs."""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

import pytest

import aioqueue
from aioqueue import JobSpec, JobState, Ref
from tests.support.worker_helpers import running_worker


async def _state(q: aioqueue.Queue, job_id: int) -> JobState:
    return (await q.get_job(job_id)).state


async def test_child_waits_until_parent_completes(q: aioqueue.Queue) -> None:
    a = await q.enqueue("fetch", {"url": "x"})
    b = await q.enqueue("parse", {}, depends_on=[a.id])
    assert await _state(q, b.id) == JobState.WAITING
    assert (await q.get_job(b.id)).pending_parents == 1
    assert await q.complete([b.id]) == [b.id] or True  # complete() by hand settles waiting too
    # a fresh pair for the propagation itself
    c = await q.enqueue("parse", {}, depends_on=[a.id])
    assert await q.complete([a.id]) == [a.id]
    assert await _state(q, c.id) == JobState.PENDING  # set by the statement completing a


async def test_diamond_runs_in_order_and_child_reads_parent_results(q: aioqueue.Queue) -> None:
    tasks = aioqueue.Tasks()
    order: list[str] = []
    seen: dict[int, Any] = {}

    @tasks.task("step")
    async def step(ctx: aioqueue.JobContext, payload: dict[str, str]) -> str:
        order.append(payload["name"])
        if payload["name"] == "d":
            seen.update(await ctx.parent_results())
        return payload["name"].upper()

    a, b, c, d = await q.enqueue_many(
        [
            JobSpec(kind="step", payload={"name": "a"}),
            JobSpec(kind="step", payload={"name": "b"}, depends_on=[Ref(0)]),
            JobSpec(kind="step", payload={"name": "c"}, depends_on=[Ref(0)]),
            JobSpec(kind="step", payload={"name": "d"}, depends_on=[Ref(1), Ref(2)]),
        ]
    )
    assert [await _state(q, j.id) for j in (a, b, c, d)] == [
        JobState.PENDING,
        JobState.WAITING,
        JobState.WAITING,
        JobState.WAITING,
    ]
    async with running_worker(q, tasks):
        done = await q.wait(d.id, timeout=20)
    assert done.state == JobState.COMPLETED
    assert order[0] == "a" and order[-1] == "d" and sorted(order[1:3]) == ["b", "c"]
    assert seen == {b.id: "B", c.id: "C"}
    family = await q.job_family(d.id)
    assert [(f.relation, f.id) for f in family] == [("parent", b.id), ("parent", c.id)]


async def test_failed_parent_cancels_descendants_with_reason(q: aioqueue.Queue) -> None:
    a = await q.enqueue("root", {})
    b, c, d = await q.enqueue_many(
        [
            JobSpec(kind="mid", depends_on=[a.id]),
            JobSpec(kind="leaf", depends_on=[Ref(0)]),
            JobSpec(kind="leaf", depends_on=[Ref(1)], on_parent_failure="run"),
        ]
    )
    assert await q.fail([a.id], "boom") == [a.id]
    jb, jc, jd = (await q.get_job(b.id)), (await q.get_job(c.id)), (await q.get_job(d.id))
    assert jb.state == JobState.CANCELLED and jb.error is not None
    assert jb.error.type == "ParentFailed" and f"parent job {a.id} failed" in jb.error.message
    assert jc.state == JobState.CANCELLED and f"parent job {b.id} cancelled" in jc.error.message  # type: ignore[union-attr]
    # on_parent_failure="run": its parent was cancelled, it runs anyway
    assert jd.state == JobState.PENDING


async def test_on_parent_failure_run_waits_for_every_parent(q: aioqueue.Queue) -> None:
    a = await q.enqueue("p", {})
    b = await q.enqueue("p", {})
    c = await q.enqueue("child", {}, depends_on=[a.id, b.id], on_parent_failure="run")
    await q.cancel(a.id)
    assert await _state(q, c.id) == JobState.WAITING
    await q.complete([b.id])
    assert await _state(q, c.id) == JobState.PENDING


async def test_worker_failure_propagates(q: aioqueue.Queue) -> None:
    tasks = aioqueue.Tasks()

    @tasks.task("bad", max_attempts=1)
    async def bad(ctx: aioqueue.JobContext, payload: Any) -> None:
        raise RuntimeError("nope")

    a = await q.enqueue("bad", {})
    b = await q.enqueue("never", {}, depends_on=[a.id])
    async with running_worker(q, tasks):
        job = await q.wait(b.id, timeout=20)
    assert job.state == JobState.CANCELLED
    assert (await q.get_job(a.id)).state == JobState.FAILED


async def test_depending_on_a_finished_parent(q: aioqueue.Queue) -> None:
    a = await q.enqueue("p", {})
    f = await q.enqueue("p", {})
    await q.complete([a.id])
    await q.fail([f.id], "x")
    ok = await q.enqueue("c", {}, depends_on=[a.id])
    assert await _state(q, ok.id) == JobState.PENDING
    gone = await q.enqueue("c", {}, depends_on=[a.id, f.id])
    job = await q.get_job(gone.id)
    assert job.state == JobState.CANCELLED and job.error is not None
    assert job.error.type == "ParentFailed"


async def test_missing_parent_is_refused_and_nothing_written(q: aioqueue.Queue) -> None:
    before = len(await q.list_jobs())
    with pytest.raises(aioqueue.JobNotFound, match="depends_on names job 999999"):
        await q.enqueue("c", {}, depends_on=[999999])
    with pytest.raises(aioqueue.JobNotFound):
        await q.enqueue_many([JobSpec(kind="a"), JobSpec(kind="b", depends_on=[Ref(0), 999999])])
    assert len(await q.list_jobs()) == before


async def test_bad_depends_on_inputs(q: aioqueue.Queue) -> None:
    with pytest.raises(aioqueue.InvalidJobError, match="earlier spec"):
        await q.enqueue_many([JobSpec(kind="a", depends_on=[Ref(0)])])
    with pytest.raises(aioqueue.InvalidJobError, match="earlier spec"):
        await q.enqueue("a", {}, depends_on=[Ref(0)])  # type: ignore[list-item]
    with pytest.raises(aioqueue.InvalidJobError, match="job ids"):
        await q.enqueue("a", {}, depends_on=["1"])  # type: ignore[list-item]
    with pytest.raises(aioqueue.InvalidJobError, match="unique_key"):
        await q.enqueue("a", {}, depends_on=[1], unique_key="k")
    with pytest.raises(aioqueue.InvalidJobError, match="on_parent_failure"):
        await q.enqueue("a", {}, depends_on=[1], on_parent_failure="maybe")  # type: ignore[arg-type]


async def test_rolled_back_tx_leaves_nothing(q: aioqueue.Queue) -> None:
    a = await q.enqueue("p", {})
    async with q.pool.acquire() as conn:
        tx = conn.transaction()
        await tx.start()
        child = await q.enqueue("c", {}, depends_on=[a.id], tx=conn)
        await q.enqueue_many([JobSpec(kind="x"), JobSpec(kind="y", depends_on=[Ref(0)])], tx=conn)
        await tx.rollback()
    with pytest.raises(aioqueue.JobNotFound):
        await q.get_job(child.id)
    deps = await q.pool.fetchval(f'SELECT count(*) FROM "{q.config.schema}".job_deps')
    assert deps == 0
    parent = await q.pool.fetchval(
        f'SELECT has_children FROM "{q.config.schema}".jobs WHERE id = $1', a.id
    )
    assert parent is False
    # the parent completes without the trigger ever running for it
    await q.complete([a.id])


async def test_sql_add_jobs_with_refs_and_ids(q: aioqueue.Queue) -> None:
    s = q.config.schema
    a = await q.enqueue("p", {})
    rows = await q.pool.fetch(
        f'SELECT id FROM "{s}".add_jobs($1::jsonb) ORDER BY ord',
        json.dumps([{"kind": "x"}, {"kind": "y", "depends_on": [{"ref": 0}, a.id]}]),
    )
    x, y = rows[0]["id"], rows[1]["id"]
    assert await _state(q, y) == JobState.WAITING
    assert (await q.get_job(y)).pending_parents == 2
    await q.complete([x, a.id])
    assert await _state(q, y) == JobState.PENDING
    import asyncpg

    with pytest.raises(asyncpg.InvalidParameterValueError, match="spec 0: on_parent_failure"):
        await q.pool.fetch(
            f'SELECT * FROM "{s}".add_jobs($1::jsonb)', '[{"kind": "x", "on_parent_failure": 1}]'
        )


async def test_prune_keeps_parents_of_unfinished_children(q: aioqueue.Queue) -> None:
    a = await q.enqueue("p", {})
    b = await q.enqueue("p", {})
    c = await q.enqueue("c", {}, depends_on=[a.id, b.id])
    await q.complete([a.id])
    later = dt.datetime.now(dt.UTC) + dt.timedelta(hours=1)
    deleted = await q.queries.job_prune(
        q.pool, state="completed", retention=0.0, limit=100, now=later
    )
    assert deleted == 0  # c still waits for b and may read a's result
    await q.complete([b.id])
    await q.complete([c.id])
    pruned = await q.queries.job_prune(
        q.pool, state="completed", retention=0.0, limit=100, now=later
    )
    assert pruned == 3
    deps = await q.pool.fetchval(f'SELECT count(*) FROM "{q.config.schema}".job_deps')
    assert deps == 0


async def test_cancel_a_waiting_job(q: aioqueue.Queue) -> None:
    a = await q.enqueue("p", {})
    b = await q.enqueue("c", {}, depends_on=[a.id])
    assert (await q.cancel(b.id)).state == JobState.CANCELLED
    await q.complete([a.id])  # its child is gone already: nothing to settle
    assert await _state(q, b.id) == JobState.CANCELLED


async def test_a_1000_step_chain_is_cancelled_by_one_failure(q: aioqueue.Queue) -> None:
    steps = await q.enqueue_chain([JobSpec(kind="step", payload={"i": i}) for i in range(1000)])
    assert await q.fail([steps[0].id], "first step broke") == [steps[0].id]
    s = q.config.schema
    states = await q.pool.fetch(
        f'SELECT state::text AS state, count(*) AS n FROM "{s}".jobs GROUP BY 1 ORDER BY 1'
    )
    assert [(r["state"], r["n"]) for r in states] == [("cancelled", 999), ("failed", 1)]
    last = await q.get_job(steps[-1].id)
    assert last.error is not None and f"parent job {steps[-2].id} cancelled" in last.error.message


async def test_parents_with_many_children_settle_them_all(q: aioqueue.Queue) -> None:
    a = await q.enqueue("p", {})
    kids = await q.enqueue_many([JobSpec(kind="c", depends_on=[a.id]) for _ in range(500)])
    marks = await q.pool.fetchval(
        f'SELECT has_children FROM "{q.config.schema}".jobs WHERE id = $1', a.id
    )
    assert marks is True
    await q.complete([a.id])
    states = {(await q.get_job(k.id)).state for k in kids[::50]}
    assert states == {JobState.PENDING}


async def test_sql_add_job_with_depends_on(q: aioqueue.Queue) -> None:
    s = q.config.schema
    a = await q.enqueue("p", {})
    child = await q.pool.fetchval(
        f"SELECT \"{s}\".add_job('c', depends_on => ARRAY[$1::bigint], "
        "payload => '{\"x\": null}', meta => '{\"m\": 1}', on_parent_failure => 'run')",
        a.id,
    )
    job = await q.get_job(child)
    assert (job.state, job.payload, job.meta) == (JobState.WAITING, {"x": None}, {"m": 1})
    await q.cancel(a.id)
    assert await _state(q, child) == JobState.PENDING  # on_parent_failure => 'run'
    plain = await q.pool.fetchval(f"SELECT \"{s}\".add_job('c', '{{}}')")  # still resolves
    assert await _state(q, plain) == JobState.PENDING


async def test_a_waiting_child_keeps_its_concurrency_key(q: aioqueue.Queue) -> None:
    """depends_on with a concurrency_key, through every enqueue path that takes both: the key
    is written while the child waits (migration 0014), so its key's limits hold once it runs."""
    parent = await q.enqueue("fetch")
    one = await q.enqueue("parse", depends_on=[parent.id], concurrency_key="tenant:1")
    meta = await q.enqueue("parse", depends_on=[parent.id], concurrency_key="t2", meta={"a": 1})
    many = await q.enqueue_many(
        [JobSpec(kind="parse", depends_on=[parent.id], concurrency_key="t3")]
    )
    group = await q.enqueue_group(
        [JobSpec(kind="fetch"), JobSpec(kind="parse", depends_on=[Ref(0)], concurrency_key="t4")]
    )
    jobs = [await q.get_job(i) for i in (one.id, meta.id, many[0].id, group.member_ids[1])]
    assert [(j.state.value, j.concurrency_key) for j in jobs] == [
        ("waiting", "tenant:1"),
        ("waiting", "t2"),
        ("waiting", "t3"),
        ("waiting", "t4"),
    ]
