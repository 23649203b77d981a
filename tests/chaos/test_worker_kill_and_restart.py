"""Real subprocess workers (the CLI) killed and signalled; LISTEN backends terminated; the
server restarted. Invariants after each: nothing lost, one accepted completion per job, no
zombie leases, attempts accounted for, no connection left behind."""

from __future__ import annotations

import asyncio
import os
import signal
import time
from pathlib import Path
from typing import Any

import anyio
import pytest

import aioqueue
from aioqueue._consumer.outcome import Outcome
from aioqueue._db import embedded
from tests.support.processes import check_invariants, completed, count, ledger, start_worker, until
from tests.support.worker_helpers import Recorder

pytestmark = [pytest.mark.anyio, pytest.mark.chaos]


@pytest.fixture
async def chaos(q: aioqueue.Queue, dsn: str) -> aioqueue.Queue:
    await q.pool.execute(
        f'CREATE TABLE "{q.config.schema}".chaos_ledger (job_id bigint, attempt int, '
        "worker_pid int, outcome text, at timestamptz DEFAULT clock_timestamp())"
    )
    return q


async def test_sigkill_mid_job_is_rescued_and_the_zombie_is_fenced(
    chaos: aioqueue.Queue, dsn: str
) -> None:
    """A1: worker A runs 200 jobs (30 s each) when it is killed; B runs all 200 again within
    lease + rescue interval + margin; A's late completions are fenced out."""
    q = chaos
    outs = await q.enqueue_many([{"kind": "sleep", "payload": {"seconds": 30}} for _ in range(200)])
    ids = [o.id for o in outs]
    a = await start_worker(dsn, q.config.schema, "--concurrency", "200")
    try:
        await until(lambda: count(q, "started", 200), 30)
        stale = {
            r["id"]: r["lease_token"]
            for r in await q.pool.fetch(
                f'SELECT id, lease_token FROM "{q.config.schema}".jobs WHERE id = ANY($1)', ids
            )
        }
        killed_at = time.monotonic()
        a.send_signal(signal.SIGKILL)
        await a.wait()
        await q.pool.execute(  # the second run must be quick
            f'UPDATE "{q.config.schema}".jobs SET payload = \'{{"seconds": 0}}\''
        )
        b = await start_worker(dsn, q.config.schema, "--concurrency", "200")
        try:
            await until(lambda: count(q, "finished", 200), 30)
            recovered = time.monotonic() - killed_at
            assert recovered < 2 + 0.5 + 5  # lease + rescue interval + margin
            print(f"A1: 200 jobs re-run {recovered:.2f} s after the kill")
        finally:
            b.send_signal(signal.SIGTERM)
            assert await b.wait() == 0
    finally:
        if a.returncode is None:
            a.kill()
    await check_invariants(q, ids)
    jobs = [await q.get_job(i) for i in ids]
    assert all(j.attempts == 2 for j in jobs)
    results = {j.result for j in jobs}
    # the zombie (worker A) tries to complete with its stale lease: rejected, nothing written
    accepted = await q.queries.job_finish_many(
        q.pool,
        outcomes=[
            Outcome(
                id=i,
                lease_token=stale[i],
                kind="sleep",
                attempt=1,
                state="completed",
                result='"zombie"',
            )
            for i in ids
        ],
    )
    assert accepted == []
    assert {j.result for j in [await q.get_job(i) for i in ids]} == results
    assert len(await ledger(q, "finished")) == 200  # I2: one accepted completion each


async def test_sigterm_releases_running_jobs_and_leaves_no_connection(
    chaos: aioqueue.Queue, dsn: str
) -> None:
    q = chaos
    outs = await q.enqueue_many([{"kind": "sleep", "payload": {"seconds": 30}} for _ in range(5)])
    waiting = await q.enqueue_many(
        [{"kind": "sleep", "payload": {"seconds": 30}} for _ in range(5)]
    )
    proc = await start_worker(dsn, q.config.schema, "--concurrency", "5", "--stop-timeout", "1")
    await until(lambda: count(q, "started", 5), 30)
    pid = proc.pid
    signalled = time.monotonic()
    proc.send_signal(signal.SIGTERM)
    assert await asyncio.wait_for(proc.wait(), 10) == 0
    assert time.monotonic() - signalled < 1 + 3
    for out in outs:
        job = await q.get_job(out.id)
        assert job.state is aioqueue.JobState.PENDING  # released at once, not left to a lease
        assert job.attempts == 0  # the attempt is given back
    for out in waiting:
        assert (await q.get_job(out.id)).attempts == 0  # never claimed after the signal
    assert len(await ledger(q, "started")) == 5
    left = await q.pool.fetchval(
        "SELECT count(*) FROM pg_stat_activity WHERE application_name LIKE 'aioqueue%' "
        "AND application_name LIKE $1",
        f"%:{pid}:%",
    )
    assert left == 0


async def test_terminated_listen_backend_recovers_and_wakes_by_notification(
    q: aioqueue.Queue,
) -> None:
    tasks = aioqueue.Tasks()
    rec = Recorder()

    @tasks.task("ping")
    async def ping(ctx: aioqueue.JobContext, payload: Any) -> None:
        return None

    worker = aioqueue.Worker(q, tasks, hooks=[rec], poll_interval=60)
    async with anyio.create_task_group() as tg:
        tg.start_soon(worker.run)
        await rec.wait_for("worker_started")
        notifier = worker._notifier
        assert notifier is not None and notifier.backend_pid is not None
        await q.pool.fetchval("SELECT pg_terminate_backend($1)", notifier.backend_pid)
        await notifier.wait_reconnected(1, timeout=10)
        out = await q.enqueue("ping")
        await rec.wait_for("completed", out.id, timeout=5)  # not the 60 s poll
        await worker.stop()


async def test_server_restart_worker_recovers(tmp_path: Path) -> None:
    if os.environ.get("AIOQUEUE_TEST_DSN"):
        pytest.skip("needs the embedded server to restart it")
    data = tmp_path / "pg"
    server = await anyio.to_thread.run_sync(embedded.ensure_server, data)
    try:
        q = await aioqueue.Queue.connect(server, schema="restart")
        tasks = aioqueue.Tasks()
        rec = Recorder()

        @tasks.task("ping")
        async def ping(ctx: aioqueue.JobContext, payload: Any) -> None:
            return None

        worker = aioqueue.Worker(q, tasks, hooks=[rec], poll_interval=60)
        async with anyio.create_task_group() as tg:
            tg.start_soon(worker.run)
            await rec.wait_for("worker_started")
            again = await anyio.to_thread.run_sync(embedded.restart_server, data)
            assert again == server  # same port: clients can reconnect
            assert worker._notifier is not None
            await worker._notifier.wait_reconnected(1, timeout=20)
            out = await q.enqueue("ping")
            await rec.wait_for("completed", out.id, timeout=10)
            await worker.stop()
        await q.close()
    finally:
        await anyio.to_thread.run_sync(embedded.stop_server, data)


async def test_processes_flag_runs_several_workers_and_stops_them(
    chaos: aioqueue.Queue, dsn: str
) -> None:
    q = chaos
    await q.enqueue_many([{"kind": "sleep", "payload": {"seconds": 0.5}} for _ in range(20)])
    parent = await start_worker(dsn, q.config.schema, "--concurrency", "5", "--processes", "2")
    await until(lambda: count(q, "finished", 20), 30)
    pids = {r["worker_pid"] for r in await ledger(q, "finished")}
    assert len(pids) == 2  # both children took jobs
    parent.send_signal(signal.SIGTERM)
    assert await asyncio.wait_for(parent.wait(), 15) == 0


async def test_server_restart_during_a_two_process_drain_loses_nothing(tmp_path: Path) -> None:
    """C1: `pg_ctl restart -m fast` while two worker processes drain 5,000 jobs."""
    if os.environ.get("AIOQUEUE_TEST_DSN"):
        pytest.skip("needs the embedded server to restart it")
    data = tmp_path / "pg"
    server = await anyio.to_thread.run_sync(embedded.ensure_server, data)
    procs: list[asyncio.subprocess.Process] = []
    try:
        q = await aioqueue.Queue.connect(server, schema="c1")
        await q.pool.execute(
            "CREATE TABLE c1.chaos_ledger (job_id bigint, attempt int, worker_pid int, "
            "outcome text, at timestamptz DEFAULT clock_timestamp())"
        )
        n = 5000
        outs = await q.enqueue_many(
            [{"kind": "sleep", "payload": {"seconds": 0.01}} for _ in range(n)]
        )
        procs = [await start_worker(server, "c1", "--concurrency", "20") for _ in range(2)]
        await until(lambda: count(q, "finished", 500), 60)
        restarted_at = time.monotonic()
        await anyio.to_thread.run_sync(embedded.restart_server, data)
        await q.pool.expire_connections()
        await until(lambda: completed(q, n), 90)
        drained_after_restart = time.monotonic() - restarted_at
        await check_invariants(q, [o.id for o in outs])
        finished = await ledger(q, "finished")
        assert len(finished) - n <= 40  # re-runs only for jobs in flight at the restart
        assert len({r["worker_pid"] for r in finished}) == 2
        assert drained_after_restart < 60
        for p in procs:
            p.send_signal(signal.SIGTERM)
        assert [await asyncio.wait_for(p.wait(), 15) for p in procs] == [0, 0]
        await q.close()
    finally:
        for p in procs:
            if p.returncode is None:
                p.kill()
        await anyio.to_thread.run_sync(embedded.stop_server, data)


async def test_second_sigint_stops_at_once_and_releases(chaos: aioqueue.Queue, dsn: str) -> None:
    """B5: SIGINT, then SIGINT again: an immediate stop, jobs released with attempts given back."""
    q = chaos
    outs = await q.enqueue_many([{"kind": "sleep", "payload": {"seconds": 60}} for _ in range(3)])
    proc = await start_worker(
        dsn, q.config.schema, "--stop-timeout", "60", stderr=asyncio.subprocess.PIPE
    )
    await until(lambda: count(q, "started", 3), 30)
    proc.send_signal(signal.SIGINT)  # graceful: would wait up to 60 s for the jobs
    assert proc.stderr is not None
    with anyio.fail_after(10):  # two signals sent at once would merge into one
        while b"stopping gracefully" not in await proc.stderr.readline():
            pass
    proc.send_signal(signal.SIGINT)  # again: stop now
    assert await asyncio.wait_for(proc.wait(), 10) == 0
    for out in outs:
        job = await q.get_job(out.id)
        assert job.state is aioqueue.JobState.PENDING
        assert job.attempts == 0


async def test_poison_pill_that_kills_its_worker_fails_after_max_attempts(
    chaos: aioqueue.Queue, dsn: str
) -> None:
    """A3: a task that kills its process; a supervisor restarts the worker; after 3 rescues the
    job is failed and never claimed a 4th time, while normal jobs all complete."""
    q = chaos
    poison = await q.enqueue("die", max_attempts=3)
    normal = await q.enqueue_many([{"kind": "sleep", "payload": {"seconds": 0}} for _ in range(50)])
    starts = 0
    proc = await start_worker(dsn, q.config.schema)
    try:
        with anyio.fail_after(60):
            while True:  # a supervisor: restart the worker whenever the pill kills it
                if await _failed(q, poison.id):
                    break
                if proc.returncode is not None:
                    assert proc.returncode == 137
                    starts += 1
                    proc = await start_worker(dsn, q.config.schema)
                await anyio.sleep(0.05)
        assert starts == 3  # killed by its 3 attempts, never a 4th
        await until(lambda: count(q, "finished", 50), 30)
    finally:
        if proc.returncode is None:
            proc.send_signal(signal.SIGTERM)
            assert await proc.wait() == 0
    job = await q.get_job(poison.id)
    assert job.attempts == 3
    assert job.error is not None and "lease expired" in job.error.message
    assert len([r for r in await ledger(q, "started") if r["job_id"] == poison.id]) == 3
    await check_invariants(q, [o.id for o in normal])


async def _failed(q: aioqueue.Queue, job_id: int) -> bool:
    return (await q.get_job(job_id)).state is aioqueue.JobState.FAILED
