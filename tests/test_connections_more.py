"""More connection and NOTIFY faults (RELIABILITY plan 8.3 C4, C7-C10 and 8.4 D1, D3, D5):
backends terminated under load, an ambiguous COMMIT, a read-only database, poll-only workers,
listener hygiene, lost and spoofed notifications, long names. Invariants checked: every job
completes (I1), one accepted completion each (I2), nothing left running (I3)."""

from __future__ import annotations

import logging
import random
import secrets
import time
from collections import Counter
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import anyio
import asyncpg
import pytest

import aioqueue

from .conftest import _with_database
from .faultproxy import FaultProxy
from .test_connection_faults import _tcp_target, proxy  # noqa: F401 - the proxy fixture
from .worker_helpers import FAST, Recorder

pytestmark = [pytest.mark.anyio, pytest.mark.chaos]
ROOT = Path(__file__).resolve().parent.parent


class Stamps:
    """A hook that keeps (monotonic time, event type, job id) of every event."""

    def __init__(self) -> None:
        self.seen: list[tuple[float, str, int | None]] = []

    def __call__(self, event: aioqueue.Event) -> None:
        self.seen.append((time.monotonic(), event.type, event.job_id))

    def first(self, type_: str, job_id: int | None = None, after: float = 0.0) -> float | None:
        for at, t, j in self.seen:
            if t == type_ and at >= after and (job_id is None or j == job_id):
                return at
        return None


def _tasks(runs: Counter[int], *kinds: str, gate: anyio.Event | None = None) -> aioqueue.Tasks:
    """Handlers that count their runs, optionally wait on ``gate``, and return the payload."""
    tasks = aioqueue.Tasks()

    async def work(ctx: aioqueue.JobContext, payload: Any) -> Any:
        runs[ctx.job.id] += 1
        if gate is not None:
            await gate.wait()
        return payload

    for kind in kinds or ("work",):
        tasks.task(kind)(work)
    return tasks


def _done(rec: Recorder) -> set[int | None]:
    return {e.job_id for e in rec.of("completed")}


async def _states(db: Any, schema: str, ids: list[int]) -> dict[str, int]:
    rows = await db.fetch(
        f'SELECT state::text, count(*) FROM "{schema}".jobs WHERE id = ANY($1) GROUP BY 1', ids
    )
    return {r[0]: r[1] for r in rows}


async def _assert_invariants(db: Any, schema: str, ids: list[int], rec: Recorder) -> None:
    """I1 every job completed, I2 one accepted completion each, I3 nothing left running."""
    assert await _states(db, schema, ids) == {"completed": len(ids)}
    accepted = Counter(e.job_id for e in rec.of("completed"))
    assert all(accepted[i] == 1 for i in ids), {i: accepted[i] for i in ids if accepted[i] != 1}
    running = await db.fetchval(f"SELECT count(*) FROM \"{schema}\".jobs WHERE state = 'running'")
    assert running == 0


async def _until(check: Callable[[], Any], timeout: float, every: float = 0.05) -> None:
    """Poll ``check`` (sync or async, truthy when done) until it holds or ``timeout``."""
    with anyio.fail_after(timeout):
        while True:
            result = check()
            if hasattr(result, "__await__"):
                result = await result
            if result:
                return
            await anyio.sleep(every)


# -- C4 all worker backends terminated every 1-2 s under load -----------------------------------


async def test_c4_backends_terminated_every_1_to_2_s_under_load(
    q: aioqueue.Queue,
    dsn: str,
    schema: str,
    conn: asyncpg.Connection,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.WARNING, logger="aioqueue")
    runs: Counter[int] = Counter()
    rec, stamps = Recorder(), Stamps()
    worker = aioqueue.Worker(q, _tasks(runs), concurrency=20, hooks=[rec, stamps], **FAST)
    # the producer has its own pool under another application_name: only the worker is killed
    producer_pool = await asyncpg.create_pool(
        dsn, min_size=1, max_size=2, server_settings={"application_name": "c4-producer"}
    )
    producer = aioqueue.Queue(producer_pool, schema=schema)
    ids: list[int] = []
    kills: list[tuple[float, int]] = []
    exited = anyio.Event()
    load_seconds = 10.0

    async def run_worker() -> None:
        await worker.run()
        exited.set()

    async def produce(until: float) -> None:
        while time.monotonic() < until:  # ~80 jobs/s, one transaction each
            ids.append((await producer.enqueue("work", len(ids))).id)
            await anyio.sleep(0.01)

    async def terminate(until: float) -> None:
        while True:
            await anyio.sleep(random.uniform(1.0, 2.0))
            if time.monotonic() >= until:
                return
            n = await conn.fetchval(
                "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                "WHERE datname = current_database() "
                "AND (application_name = 'aioqueue' OR application_name LIKE $1)",
                f"aioqueue-%:{worker.id}",
            )
            kills.append((time.monotonic(), n))

    try:
        async with anyio.create_task_group() as tg:
            tg.start_soon(run_worker)
            await rec.wait_for("worker_started")
            until = time.monotonic() + load_seconds
            async with anyio.create_task_group() as load:
                load.start_soon(produce, until)
                load.start_soon(terminate, until)
            load_end = time.monotonic()
            await rec.wait(lambda r: _done(r) >= set(ids), timeout=30)
            drained = time.monotonic()
            assert not exited.is_set()  # no kill made the worker exit
            await worker.stop(timeout=5)
    finally:
        await producer_pool.close()
    await _assert_invariants(q.pool, schema, ids, rec)
    assert len(kills) >= 5 and all(n >= 2 for _, n in kills)  # pool + claim + LISTEN backends
    # after each kill, work resumes: the next completion comes within a bounded time
    gaps = [(stamps.first("completed", after=at) or drained) - at for at, _ in kills]
    assert max(gaps) < 5, gaps
    assert drained - load_end < 15  # claims lost in a kill wait for their lease (3 s) at most
    warnings = [r for r in caplog.records if r.levelno >= logging.WARNING]
    reruns = sum(runs.values()) - len(ids)
    print(
        f"\nC4: {len(ids)} jobs, {len(kills)} kills ({sum(n for _, n in kills)} backends), "
        f"max gap to next completion {max(gaps):.2f} s, drained {drained - load_end:.2f} s after "
        f"the load, {reruns} re-runs, {len(rec.of('rescued'))} rescued, "
        f"{len(rec.of('completion_rejected'))} rejected, {len(warnings)} warnings "
        f"({len(warnings) / len(kills):.1f}/kill)"
    )
    assert len(warnings) <= 10 * len(kills)  # a few lines per kill, not a flood


# -- C7 ambiguous COMMIT on enqueue -------------------------------------------------------------


@pytest.mark.parametrize("how", ["autocommit", "transaction", "autocommit-keyless"])
async def test_c7_ambiguous_commit_on_enqueue(
    proxy: FaultProxy,  # noqa: F811
    dsn: str,
    schema: str,
    conn: asyncpg.Connection,
    how: str,
) -> None:
    """The connection is cut after the commit reached the server, before its reply: the caller
    gets a connection error; the job exists once or not at all; a retry with the same
    unique_key is safe (without a key a retry may duplicate it, as the README says)."""
    # one connection (the attempt runs on the backend whose pid we take)
    pq = await aioqueue.Queue.connect(
        proxy.dsn(_tcp_target(dsn)[2]), schema=schema, pool_max_size=1
    )
    marker = f"c7-{secrets.token_hex(8)}"
    key = None if how.endswith("keyless") else marker
    payload = {"marker": marker}

    async def first_attempt() -> None:
        if how == "transaction":  # the COMMIT of the caller's transaction
            async with pq.pool.acquire() as c, c.transaction():
                await pq.enqueue("work", payload, unique_key=key, tx=c)
                proxy.cut_after(b"COMMIT")
        else:  # Bind+Execute+Sync: the implicit transaction commits at Sync
            proxy.cut_after(marker.encode())
            await pq.enqueue("work", payload, unique_key=key)

    try:
        pid = await pq.pool.fetchval("SELECT pg_backend_pid()")  # the one connection
        with pytest.raises((asyncpg.ConnectionDoesNotExistError, ConnectionError)) as info:
            await first_attempt()
        assert proxy.cuts == 1
        assert "connection" in str(info.value).lower()

        async def count() -> int:
            return int(
                await conn.fetchval(
                    f"SELECT count(*) FROM \"{schema}\".jobs WHERE payload->>'marker' = $1",
                    marker,
                )
            )

        async def cut_backend_gone() -> bool:  # its transaction committed or rolled back
            alive = await conn.fetchval("SELECT count(*) FROM pg_stat_activity WHERE pid = $1", pid)
            return alive == 0

        await _until(cut_backend_gone, timeout=10)
        landed = await count()
        assert landed in (0, 1)  # once or not at all, never half
        again = await pq.enqueue("work", payload, unique_key=key)  # the caller retries
        if key is not None:
            assert await count() == 1
            assert again.deduped is bool(landed)
        else:
            assert await count() == landed + 1  # a duplicate when the first commit landed
            readme = (ROOT / "README.md").read_text()
            assert "retry with the same `unique_key`" in readme
        print(f"\nC7 {how}: first commit landed={bool(landed)}, retry deduped={again.deduped}")
    finally:
        await pq.close()


# -- C8 read-only database (simulated failover) -------------------------------------------------


@pytest.fixture
async def private_db(server_dsn: str) -> AsyncIterator[tuple[str, str]]:
    """A database of this test's own (it is made read-only), dropped at the end."""
    name = f"aq_ro_{secrets.token_hex(4)}"
    admin = await asyncpg.connect(server_dsn)
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
        yield _with_database(server_dsn, name), name
    finally:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()


async def test_c8_read_only_database_worker_retries_then_resumes(
    private_db: tuple[str, str],
    server_dsn: str,
    schema: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    dsn, name = private_db
    caplog.set_level(logging.WARNING, logger="aioqueue")
    admin = await asyncpg.connect(server_dsn)  # on another database: never read-only, never killed
    db = await asyncpg.connect(dsn)  # for assertions; opened read-write, spared by the kills
    q = await aioqueue.Queue.connect(dsn, schema=schema)
    runs: Counter[int] = Counter()
    gate = anyio.Event()
    rec, stamps = Recorder(), Stamps()
    worker = aioqueue.Worker(
        q, _tasks(runs, gate=gate), concurrency=10, hooks=[rec, stamps], **FAST
    )
    exited = anyio.Event()

    async def run_worker() -> None:
        await worker.run()
        exited.set()

    async def read_only(on: bool) -> None:
        value = (
            "SET default_transaction_read_only = on"
            if on
            else "RESET default_transaction_read_only"
        )
        await admin.execute(f'ALTER DATABASE "{name}" {value}')

    async def failover() -> int:
        """Every session of the worker dies; new ones land on the (now read-only) database."""
        return int(
            await admin.fetchval(
                "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                "WHERE datname = $1 AND pid <> $2",
                name,
                db.get_server_pid(),
            )
        )

    def logged(prefix: str, since: int = 0) -> int:
        return sum(r.getMessage().startswith(prefix) for r in caplog.records[since:])

    try:
        outs = await q.enqueue_many([{"kind": "work", "payload": i} for i in range(50)])
        ids = [o.id for o in outs]
        async with anyio.create_task_group() as tg:
            tg.start_soon(run_worker)
            await rec.wait_for("started", count=10)
            # 1. busy: 10 jobs running, 40 waiting, when the database turns read-only
            await read_only(True)
            assert await failover() >= 3
            gate.set()  # the 10 running jobs finish now: their outcomes cannot be written
            t_ro = time.monotonic()
            await _until(
                lambda: (
                    logged("producer: claim failed") >= 6
                    and logged("rescuer: failed") >= 2
                    and logged("completer: flush failed") >= 2
                ),
                timeout=15,
            )
            ro_seconds = time.monotonic() - t_ro
            claims_per_s = (logged("producer: claim failed") - 1) / ro_seconds
            assert "ReadOnlySQLTransactionError" in caplog.text
            assert not exited.is_set() and not rec.of("completed")
            # no hot loop: about one claim per poll interval (0.2 s here)
            assert claims_per_s <= 2 / FAST["poll_interval"], claims_per_s
            # writable again, WITHOUT new connections: sessions opened meanwhile must be replaced
            await read_only(False)
            t_rw = time.monotonic()
            await rec.wait(lambda r: _done(r) >= set(ids), timeout=20)
            resumed = (stamps.first("completed", after=t_rw) or 0) - t_rw
            drained = time.monotonic() - t_rw
            await _assert_invariants(db, schema, ids, rec)
            # 2. idle: nothing runs while the database is read-only, so only maintenance fails
            await read_only(True)
            await failover()
            mark = len(caplog.records)
            await _until(lambda: logged("rescuer: failed", mark) >= 3, timeout=15)
            await read_only(False)
            t_rw2 = time.monotonic()
            zombie = await db.fetchval(  # a job whose worker died meanwhile
                f'INSERT INTO "{schema}".jobs (kind, state, attempts, lease_token, locked_by, '
                "lease_expires_at) VALUES ('work', 'running', 1, 1, 'dead', now()) RETURNING id"
            )
            await rec.wait_for("rescued", zombie, timeout=10)  # the rescuer works again
            rescued = time.monotonic() - t_rw2
            await rec.wait_for("completed", zombie, timeout=10)
            assert not exited.is_set()
            await worker.stop(timeout=5)
        await _assert_invariants(db, schema, [*ids, zombie], rec)
        print(
            f"\nC8: read-only {ro_seconds:.1f} s: {claims_per_s:.1f} failed claims/s "
            f"(poll 0.2 s), {len(caplog.records)} warnings in all, no crash; writable again: "
            f"first completion {resumed:.2f} s, all 50 {drained:.2f} s; idle worker's rescuer "
            f"back {rescued:.2f} s after; {sum(runs.values()) - len(ids) - 1} re-runs"
        )
    finally:
        await q.close()
        await db.close()
        await admin.close()
