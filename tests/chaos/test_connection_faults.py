"""Connection loss between a worker and PostgreSQL, through a loopback TCP fault proxy:
connections reset mid-drain, a completion flush cut before its reply, a blackholed network.
Invariants: every job completed (no loss), each accepted once, nothing left running."""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import AsyncIterator
from typing import Any

import anyio
import pytest

import aioqueue
from aioqueue._consumer.completer import Completer
from aioqueue._consumer.outcome import Outcome
from aioqueue._db.connect import is_open
from tests.support.faultproxy import FaultProxy, tcp_target
from tests.support.worker_helpers import FAST, Recorder

pytestmark = pytest.mark.chaos


@pytest.fixture
async def q(proxy: FaultProxy, dsn: str, schema: str) -> AsyncIterator[aioqueue.Queue]:
    """A Queue whose every connection (pool, claims, LISTEN) goes through the proxy."""
    database = tcp_target(dsn)[2]
    queue = await aioqueue.Queue.connect(proxy.dsn(database), schema=schema, pool_max_size=4)
    try:
        yield queue
    finally:
        await queue.close()


def _counting_tasks(runs: Counter[int], gate: anyio.Event | None = None) -> aioqueue.Tasks:
    tasks = aioqueue.Tasks()

    @tasks.task("work")
    async def work(ctx: aioqueue.JobContext, payload: Any) -> int:
        runs[ctx.job.id] += 1
        if gate is not None:
            await gate.wait()
        return int(payload)

    return tasks


async def _assert_all_completed_once(q: aioqueue.Queue, ids: list[int]) -> None:
    rows = await q.pool.fetch(
        f'SELECT state::text, count(*) FROM "{q.config.schema}".jobs WHERE id = ANY($1) GROUP BY 1',
        ids,
    )
    assert dict(rows) == {"completed": len(ids)}


async def test_worker_survives_all_connections_reset_mid_drain(
    q: aioqueue.Queue, proxy: FaultProxy, schema: str
) -> None:
    runs: Counter[int] = Counter()
    rec = Recorder()
    outs = await q.enqueue_many([{"kind": "work", "payload": i} for i in range(2000)])
    ids = [o.id for o in outs]
    worker = aioqueue.Worker(q, _counting_tasks(runs), concurrency=20, hooks=[rec], **FAST)
    async with anyio.create_task_group() as tg:
        tg.start_soon(worker.run)
        await rec.wait_for("completed", count=200, timeout=30)
        proxy.reset()  # every connection of the worker dies at once
        # claims whose reply was lost come back after their lease expires (3 s here)
        await rec.wait_for("completed", count=len(ids), timeout=60)
        await worker.stop(timeout=5)
    await _assert_all_completed_once(q, ids)
    assert sum(runs.values()) - len(ids) <= 40  # re-runs only for outcomes in flight
    assert worker._notifier is not None and worker._notifier.reconnects >= 1


async def test_completion_flush_cut_before_reply_is_retried(
    q: aioqueue.Queue, proxy: FaultProxy, schema: str
) -> None:
    runs: Counter[int] = Counter()
    rec = Recorder()
    outs = await q.enqueue_many([{"kind": "work", "payload": i} for i in range(50)])
    proxy.cut_after(b"job_complete_many")  # the first flush reaches the server, no reply
    worker = aioqueue.Worker(q, _counting_tasks(runs), hooks=[rec], **FAST)
    await worker.run(until_empty=True)
    assert proxy.cuts == 1
    await _assert_all_completed_once(q, [o.id for o in outs])
    assert set(runs.values()) == {1}  # the retried flush was fenced-idempotent: no re-runs
    assert not rec.of("completion_rejected")


async def test_outcomes_of_a_flush_retrying_at_stop_go_to_the_final_flush(
    q: aioqueue.Queue, proxy: FaultProxy
) -> None:
    """The server is unreachable while a flush retries, then the worker stops: the final flush
    (which retries for ``final_timeout``) writes those outcomes once the server is back. They
    used to be dropped with the cancelled flush: no last try, no 'gave up' in the log."""
    out = await q.enqueue("work", 1)
    [row] = await q.queries.job_claim(
        q.pool, kinds=["work"], default_max_attempts=[3], forbidden_flags=[], batch=1,
        worker_id="test", lease=60,
    )  # fmt: skip
    flushed: list[set[int]] = []
    completer = Completer(
        q.pool,
        q.queries,
        on_flushed=lambda batch, accepted: flushed.append(accepted),
        flush_interval=0.01,
        flush_size=1,
        final_timeout=30,
    )
    failed = anyio.Event()  # the log is the only signal of a failed try

    class OnFailure(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            if "flush failed" in record.getMessage():
                failed.set()

    handler, log = OnFailure(), logging.getLogger("aioqueue.worker")
    log.addHandler(handler)
    proxy.set_mode("refuse")
    proxy.reset()
    try:
        async with anyio.create_task_group() as tg:
            tg.start_soon(completer.run)
            completer.put(
                Outcome(id=out.id, lease_token=row["lease_token"], kind="work", attempt=1,
                        state="pending", give_back=True)
            )  # fmt: skip
            with anyio.fail_after(10):
                await failed.wait()
            tg.cancel_scope.cancel()  # the worker stops: run() ends with its final flush
            proxy.set_mode("pass")
    finally:
        log.removeHandler(handler)
    assert flushed == [{out.id}]
    job = await q.get_job(out.id)
    assert (job.state, job.attempts) == ("pending", 0)


async def test_listener_reconnects_after_reset_and_wakes_by_notification(
    q: aioqueue.Queue, proxy: FaultProxy, schema: str
) -> None:
    runs: Counter[int] = Counter()
    rec = Recorder()
    worker = aioqueue.Worker(q, _counting_tasks(runs), hooks=[rec], poll_interval=60)
    async with anyio.create_task_group() as tg:
        tg.start_soon(worker.run)
        await rec.wait_for("worker_started")
        proxy.reset()
        assert worker._notifier is not None
        await worker._notifier.wait_reconnected(1, timeout=10)
        out = await aioqueue.Queue(q.pool, schema=schema).enqueue("work", 7)
        await rec.wait_for("completed", out.id, timeout=5)  # a 60 s poll could not do it
        await worker.stop()


async def test_blackholed_network_then_recovery_loses_nothing(
    q: aioqueue.Queue, proxy: FaultProxy, schema: str
) -> None:
    runs: Counter[int] = Counter()
    rec = Recorder()
    outs = await q.enqueue_many([{"kind": "work", "payload": i} for i in range(1000)])
    worker = aioqueue.Worker(q, _counting_tasks(runs), concurrency=20, hooks=[rec], **FAST)
    async with anyio.create_task_group() as tg:
        tg.start_soon(worker.run)
        await rec.wait_for("completed", count=100, timeout=30)
        proxy.set_mode("blackhole")  # packets stop; sockets stay open
        with anyio.move_on_after(2):  # the network is down for 2 s: nothing can complete
            await rec.wait_for("completed", count=len(outs), timeout=3)
        proxy.set_mode("pass")
        await rec.wait_for("completed", count=len(outs), timeout=60)
        await worker.stop(timeout=5)
    await _assert_all_completed_once(q, [o.id for o in outs])


async def test_an_unreachable_server_raises_database_unavailable(
    q: aioqueue.Queue, proxy: FaultProxy
) -> None:
    """The server goes away (the proxy stops accepting): enqueue and the admin API raise
    DatabaseUnavailable, naming the server, instead of the socket's bare OSError; it is still
    an OSError (ConnectionError), as the worker's retry logic expects; nothing was sent."""
    await q.enqueue("work", 1)  # the kept-aside connection is open and used
    hot = q._hot._conn
    await proxy.close()  # every connection reset; new ones refused
    # until the driver has read the reset (a query already in flight would be ambiguous: C7)
    with anyio.fail_after(5):
        while hot is not None and is_open(hot):  # noqa: ASYNC110 (only the driver knows)
            await anyio.sleep(0.01)
    for call in (lambda: q.enqueue("work", 2), lambda: q.get_job(1), q.stats):
        with anyio.fail_after(10), pytest.raises(aioqueue.DatabaseUnavailable) as caught:
            await call()
        message = str(caught.value)
        assert message.startswith(
            f"cannot reach PostgreSQL at postgresql://{proxy.user}@127.0.0.1:"
        )
        assert "ConnectionRefusedError" in message
        assert isinstance(caught.value, ConnectionError)
        assert isinstance(caught.value.__cause__, ConnectionRefusedError)
