"""Issue 17.4: a worker on ``Queue(pool)``, the application's own asyncpg pool (the FastAPI
case), across real server restarts. Every connection aioqueue takes from a user's pool goes back
through the pool's own API (released, or terminated then released), so no restart leaks a slot;
the LISTEN connection is never handed back with its listener attached."""

from __future__ import annotations

import logging
import os
import time
import warnings
from pathlib import Path
from typing import Any

import anyio
import asyncpg
import pytest

import aioqueue
from aioqueue._db import embedded
from tests.support.worker_helpers import Recorder, running_worker

pytestmark = [pytest.mark.anyio, pytest.mark.chaos]

RESTARTS = 3
JOBS = 3000


async def _completed(pool: asyncpg.Pool, schema: str) -> int:
    try:
        return int(
            await pool.fetchval(f"SELECT count(*) FROM \"{schema}\".jobs WHERE state = 'completed'")
        )
    except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError):
        return -1  # the server is restarting


async def _until_completed(pool: asyncpg.Pool, schema: str, n: int, timeout: float) -> None:
    with anyio.fail_after(timeout):
        while await _completed(pool, schema) < n:  # noqa: ASYNC110 - only the DB shows it
            await anyio.sleep(0.05)


def _in_use(pool: asyncpg.Pool) -> int:
    return pool.get_size() - pool.get_idle_size()


@pytest.mark.timeout(300)
async def test_worker_on_a_user_pool_drains_across_three_server_restarts(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    if os.environ.get("AIOQUEUE_TEST_DSN"):
        pytest.skip("needs the embedded server to restart it")
    caplog.set_level(logging.INFO, logger="aioqueue")
    data = tmp_path / "pg"
    server = await anyio.to_thread.run_sync(embedded.ensure_server, data)
    # the application's pool: plain asyncpg, default reset (RESET ALL, UNLISTEN *, ...)
    user_pool = await asyncpg.create_pool(server, min_size=2, max_size=10)
    assert user_pool is not None
    try:
        q = aioqueue.Queue(user_pool, schema="userpool")
        await q.migrate()
        tasks = aioqueue.Tasks()

        @tasks.task("work")
        async def work(ctx: aioqueue.JobContext, payload: Any) -> None:
            await anyio.sleep(0.05)  # the drain spans all three restarts

        ids = [o.id for o in await q.enqueue_many([{"kind": "work"} for _ in range(JOBS)])]
        rec = Recorder()
        worker = aioqueue.Worker(
            q,
            tasks,
            hooks=[rec],
            concurrency=20,
            lease=5.0,
            heartbeat_interval=0.5,
            rescue_interval=0.5,
            poll_interval=0.5,
        )
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            async with anyio.create_task_group() as tg:
                tg.start_soon(worker.run)
                await rec.wait_for("worker_started")
                recoveries: list[float] = []
                await _until_completed(user_pool, "userpool", 300, timeout=60)
                for i in range(RESTARTS):
                    restarted = time.monotonic()
                    again = await anyio.to_thread.run_sync(embedded.restart_server, data)
                    assert again == server  # same port: the pool reconnects
                    if i < RESTARTS - 1:
                        # the next restart 2 s later, whether or not the worker is back yet
                        await anyio.sleep(2)
                    else:
                        before = max(await _completed(user_pool, "userpool"), 0)
                        await _until_completed(
                            user_pool, "userpool", min(before + 50, JOBS), timeout=60
                        )
                    recoveries.append(time.monotonic() - restarted)
                drain_started = time.monotonic()
                await _until_completed(user_pool, "userpool", JOBS, timeout=90)
                drained_in = time.monotonic() - drain_started
                await worker.stop(timeout=5)
            # every slot aioqueue took is back in the user's pool
            assert _in_use(user_pool) == 0, (user_pool.get_size(), user_pool.get_idle_size())
        rows = await user_pool.fetch(
            "SELECT state::text, count(*) AS n FROM userpool.jobs WHERE id = ANY($1) GROUP BY 1",
            ids,
        )
        assert {r["state"]: r["n"] for r in rows} == {"completed": JOBS}
        assert "gave up writing" not in caplog.text
        listener_warnings = [w for w in caught if "listener" in str(w.message)]
        assert listener_warnings == []
        print(
            f"\n{JOBS} jobs, {RESTARTS} restarts on a user pool (max 10): drained "
            f"{drained_in:.1f} s after the last restart recovered; first-progress after the last "
            f"restart {recoveries[-1]:.1f} s; pool in use at stop: {_in_use(user_pool)}"
        )
    finally:
        await user_pool.close()
        await anyio.to_thread.run_sync(embedded.stop_server, data)


async def test_failed_claims_on_open_connections_give_their_slots_back(
    private_db: tuple[str, str], server_dsn: str, caplog: pytest.LogCaptureFixture
) -> None:
    """A claim can fail on a connection that stays open (here: a failover to a read-only
    server). Each such claim used to keep its slot of the application's pool: a pool of 4 was
    exhausted after a few polls and the worker wedged once the database was writable again."""
    dsn, name = private_db
    caplog.set_level(logging.WARNING, logger="aioqueue")
    admin = await asyncpg.connect(server_dsn)  # another database: never read-only
    user_pool = await asyncpg.create_pool(dsn, min_size=1, max_size=4)
    assert user_pool is not None
    try:
        q = aioqueue.Queue(user_pool, schema="userpool")
        await q.migrate()
        tasks = aioqueue.Tasks()

        @tasks.task("work")
        async def work(ctx: aioqueue.JobContext, payload: Any) -> None:
            return None

        async def failover(read_only: bool) -> None:
            value = "SET default_transaction_read_only = on" if read_only else "RESET ALL"
            await admin.execute(f'ALTER DATABASE "{name}" {value}')
            ended = await admin.fetchval(  # every session dies; new ones see the new setting
                "SELECT array_agg(pid) FILTER (WHERE pg_terminate_backend(pid)) "
                "FROM pg_stat_activity WHERE datname = $1",
                name,
            )
            # Wait until those backends are gone (their sockets closed): a pool that lends an
            # expired connection the driver has not yet seen closed closes it in a task of its
            # own, whose broken pipe nobody awaits (asyncpg's behaviour, not aioqueue's).
            with anyio.fail_after(10):
                while await admin.fetchval(  # noqa: ASYNC110 - only the server shows it
                    "SELECT count(*) FROM pg_stat_activity WHERE pid = ANY($1)", ended or []
                ):
                    await anyio.sleep(0.01)

        def failed_claims() -> int:
            return sum("producer: claim failed" in r.getMessage() for r in caplog.records)

        async with running_worker(q, tasks, poll_interval=0.1) as (_worker, rec):
            await failover(read_only=True)
            with anyio.fail_after(30):
                while failed_claims() < 12:  # noqa: ASYNC110 - three times the pool's size
                    await anyio.sleep(0.05)
            in_use_read_only = _in_use(user_pool)
            await failover(read_only=False)
            outs = await q.enqueue_many([{"kind": "work"} for _ in range(200)])
            await rec.wait_for("completed", count=200, timeout=30)
        assert in_use_read_only <= 2, in_use_read_only  # the claim's and the listener's at most
        assert _in_use(user_pool) == 0
        states = await user_pool.fetch(
            "SELECT DISTINCT state::text FROM userpool.jobs WHERE id = ANY($1)",
            [o.id for o in outs],
        )
        assert [r["state"] for r in states] == ["completed"]
        print(f"\n{failed_claims()} failed claims on a read-only server; pool of 4 intact")
    finally:
        await user_pool.close()
        await admin.close()
