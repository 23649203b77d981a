"""Connection and NOTIFY faults (RELIABILITY plan 8.3 C4, C7-C10 and 8.4 D1, D3, D5):
backends terminated under load, an ambiguous COMMIT, a read-only database, poll-only workers,
listener hygiene, lost and spoofed notifications, long names. Invariants checked: every job
completes (I1), one accepted completion each (I2), nothing left running (I3)."""

from __future__ import annotations

import logging
import random
import resource
import secrets
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import anyio
import asyncpg
import pytest

import aioqueue
from aioqueue._consumer.producer import WAKE_COOLDOWN
from aioqueue.config import channel_for
from tests.support.faultproxy import FaultProxy, tcp_target
from tests.support.processes import start_worker, stop
from tests.support.roles import Roles, dsn_as
from tests.support.worker_helpers import FAST, Recorder, running_worker

pytestmark = [pytest.mark.anyio, pytest.mark.chaos]
ROOT = Path(__file__).resolve().parents[2]


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


async def test_backends_terminated_every_1_to_2_s_under_load(
    q: aioqueue.Queue,
    dsn: str,
    schema: str,
    conn: asyncpg.Connection,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """C4: every worker backend (pool, claim and LISTEN sessions) is terminated every 1-2 s under
    load; the worker never exits and each job completes once."""
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
            assert worker._notifier is not None
            await worker._notifier.wait_reconnected(len(kills), timeout=10)  # LISTEN is back
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
        f"LISTEN re-established {worker._notifier.reconnects}x, "
        f"max gap to next completion {max(gaps):.2f} s, drained {drained - load_end:.2f} s after "
        f"the load, {reruns} re-runs, {len(rec.of('rescued'))} rescued, "
        f"{len(rec.of('completion_rejected'))} rejected, {len(warnings)} warnings "
        f"({len(warnings) / len(kills):.1f}/kill)"
    )
    assert len(warnings) <= 3 * len(kills)  # a line or so per kill, not a flood


# -- C7 ambiguous COMMIT on enqueue -------------------------------------------------------------


@pytest.mark.parametrize("how", ["autocommit", "transaction", "autocommit-keyless"])
async def test_ambiguous_commit_on_enqueue(
    proxy: FaultProxy,
    dsn: str,
    schema: str,
    conn: asyncpg.Connection,
    how: str,
) -> None:
    """C7: The connection is cut after the commit reached the server, before its reply: the caller
    gets a connection error; the job exists once or not at all; a retry with the same
    unique_key is safe (without a key a retry may duplicate it, as the README says)."""
    # one connection (the attempt runs on the backend whose pid we take)
    pq = await aioqueue.Queue.connect(proxy.dsn(tcp_target(dsn)[2]), schema=schema, pool_max_size=1)
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


async def test_read_only_database_worker_retries_then_resumes(
    private_db: tuple[str, str],
    server_dsn: str,
    schema: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """C8: the database turns read-only under a busy, then an idle worker: claims and the rescuer
    fail without a crash and resume, without a reconnect, once it is writable again."""
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


# -- C9 poll-only mode (no LISTEN, as behind PgBouncer transaction pooling) ---------------------


async def test_poll_only_worker_never_listens_and_runs_jobs_within_the_poll(
    q: aioqueue.Queue, conn: asyncpg.Connection
) -> None:
    """C9: a poll-only worker (``listen=False``, for PgBouncer transaction pooling) opens no LISTEN
    backend and starts each job within one poll interval."""
    poll = 0.5
    runs: Counter[int] = Counter()
    rec, stamps = Recorder(), Stamps()
    tasks = _tasks(runs)

    @tasks.task("wait.forever")
    async def wait_forever(ctx: aioqueue.JobContext, payload: Any) -> None:
        await anyio.sleep_forever()

    settings = {**FAST, "poll_interval": poll, "listen": False}
    worker = aioqueue.Worker(q, tasks, concurrency=20, hooks=[rec, stamps], **settings)
    async with anyio.create_task_group() as tg:
        tg.start_soon(worker.run)
        await rec.wait_for("worker_started")
        assert worker._notifier is None
        latencies = []
        for i in range(8):  # one at a time: each is found by the next poll
            t0 = time.monotonic()
            out = await q.enqueue("work", i)
            await rec.wait_for("completed", out.id, timeout=5)
            latencies.append((stamps.first("started", out.id) or 0) - t0)
        burst = await q.enqueue_many([{"kind": "work", "payload": i} for i in range(200)])
        await rec.wait(lambda r: _done(r) >= {o.id for o in burst}, timeout=20)
        # a running job's cancellation is seen by the heartbeat (no 'c:' notification)
        stuck = await q.enqueue("wait.forever")
        await rec.wait_for("started", stuck.id, timeout=5)
        await q.cancel(stuck.id)
        await rec.wait_for("cancelled", stuck.id, timeout=5)
        listening = await conn.fetch(
            "SELECT pid, application_name, query FROM pg_stat_activity "
            "WHERE datname = current_database() "
            "AND (query ILIKE 'LISTEN%' OR application_name LIKE 'aioqueue-listener:%')"
        )
        assert listening == []
        await worker.stop(timeout=5)
    # the poll is jittered by 10 %; the bound is generous
    assert max(latencies) < poll * 1.1 + 0.3, latencies
    print(
        f"\nC9: poll {poll} s, enqueue->start max {max(latencies):.3f} s, "
        f"mean {sum(latencies) / len(latencies):.3f} s; 200-job burst drained; no LISTEN"
    )


# -- C10 listener hygiene -----------------------------------------------------------------------


async def test_listen_backends_stay_idle_and_the_notify_queue_empty(
    q: aioqueue.Queue, conn: asyncpg.Connection
) -> None:
    """C10: the worker's and ``Queue.wait``'s LISTEN backends are always idle, never idle in a
    transaction, and the notification queue stays empty."""
    runs: Counter[int] = Counter()
    rec = Recorder()
    worker = aioqueue.Worker(q, _tasks(runs), concurrency=10, hooks=[rec], **FAST)
    states: Counter[str] = Counter()
    usage_max = 0.0
    in_xact = 0
    ids: list[int] = []
    async with anyio.create_task_group() as tg:
        tg.start_soon(worker.run)
        await rec.wait_for("worker_started")
        first = await q.enqueue("work", 0)
        await q.wait(first.id, timeout=5)  # opens the Queue's own LISTEN connection too
        assert worker._notifier is not None and q._waiter is not None
        pids = [worker._notifier.backend_pid, q._waiter._notifier.backend_pid]
        assert None not in pids
        end = time.monotonic() + 5
        i = 0
        while time.monotonic() < end:  # soak: jobs flow, waits are woken, we sample
            i += 1
            out = await q.enqueue("work", i)
            ids.append(out.id)
            if i % 10 == 0:
                await q.wait(out.id, timeout=5)
            rows = await conn.fetch(
                "SELECT pid, state, extract(epoch FROM clock_timestamp() - xact_start) AS xact "
                "FROM pg_stat_activity WHERE pid = ANY($1)",
                pids,
            )
            assert len(rows) == 2, rows  # both still connected
            for r in rows:
                states[r["state"]] += 1
                assert r["state"] != "idle in transaction", r
                # xact_start may show on an idle listener: PostgreSQL reads incoming
                # notifications in a short transaction of its own (dated from the last query)
                in_xact += r["xact"] is not None
            usage_max = max(usage_max, await conn.fetchval("SELECT pg_notification_queue_usage()"))
            await anyio.sleep(0.02)  # sampling pace
        await rec.wait(lambda r: _done(r) >= set(ids), timeout=10)
        await worker.stop(timeout=5)
    assert set(states) <= {"idle", "active"}, states  # active: the liveness probe, briefly
    assert states["idle"] >= 0.9 * sum(states.values()), states
    assert usage_max < 0.01
    print(
        f"\nC10: {sum(states.values())} samples of 2 LISTEN backends {dict(states)}, "
        f"{len(ids)} jobs ({in_xact} samples caught PostgreSQL reading notifications), "
        f"max notification queue usage {usage_max:.6f}"
    )


# -- D1 lost notification -----------------------------------------------------------------------


async def test_jobs_inserted_without_notify_run_within_a_poll(
    q: aioqueue.Queue, conn: asyncpg.Connection, schema: str
) -> None:
    """D1: a lost notification (raw INSERTs, no NOTIFY): the jobs start within one poll."""
    poll = 0.5
    heard: list[str] = []
    await conn.add_listener(q.config.channel, lambda *args: heard.append(str(args[3])))
    runs: Counter[int] = Counter()
    rec, stamps = Recorder(), Stamps()
    worker = aioqueue.Worker(
        q, _tasks(runs), hooks=[rec, stamps], **{**FAST, "poll_interval": poll}
    )
    latencies = []
    async with anyio.create_task_group() as tg:
        tg.start_soon(worker.run)
        await rec.wait_for("worker_started")
        for i in range(8):  # raw INSERTs: no add_job, no NOTIFY; the worker is idle each time
            t0 = time.monotonic()
            job_id = await conn.fetchval(
                f'INSERT INTO "{schema}".jobs (kind, payload) VALUES ($1, $2::jsonb) RETURNING id',
                "work",
                str(i),
            )
            await rec.wait_for("completed", job_id, timeout=5)
            latencies.append((stamps.first("started", job_id) or 0) - t0)
        await worker.stop(timeout=5)
    await conn.fetchval("SELECT 1")  # notifications sent so far have been delivered to us
    assert [h for h in heard if h != "f"] == []  # no wake-up was sent ('f': jobs finished)
    assert max(latencies) < poll * 1.1 + 0.3, latencies
    print(
        f"\nD1: 8 jobs without NOTIFY, poll {poll} s: insert->start max {max(latencies):.3f} s, "
        f"mean {sum(latencies) / len(latencies):.3f} s"
    )


# -- D3 spoofed NOTIFY flood from a role with no privileges -------------------------------------


def _spoofs(batch: int, size: int) -> list[str]:
    """Garbage and look-alike hints (the exact look-alikes once per batch)."""
    out = ["", "released", "t:nan", "t:inf", "t:-inf", "t:", "c:", "f"]
    for i in range(size - len(out)):
        n = batch * size + i
        out.append(
            (
                f"garbage {n}",
                f"t:{n}",  # an epoch in 1970: "due now", a wake-up
                f"t:{9e9 + n}",  # far in the future
                f"t:{n}x",
                f"c:{n}",  # a cancellation hint: the heartbeat asks the database
                f"c:{n},x",
                f"\u202e\U0001f600 {n}",
                f'{{"id": {n}, "kind": "work"}}',
                ("x" * 7000 if n % 50 == 0 else "y") + str(n),
                f"released {n}",
            )[i % 10]
        )
    return out


async def test_spoofed_notify_flood_is_harmless(
    q: aioqueue.Queue,
    dsn: str,
    schema: str,
    roles: Roles,
) -> None:
    """D3: a role with no privilege floods the channel with look-alike and garbage payloads:
    claims stay rate-limited and every real job runs once."""
    stranger = await roles.create("aq_spoof")
    low = await asyncpg.connect(dsn_as(dsn, stranger, roles.password))
    counter = await asyncpg.connect(dsn)  # counts what was delivered on the channel
    channel = channel_for(schema)
    delivered = 0

    def count(*_: object) -> None:
        nonlocal delivered
        delivered += 1

    await counter.add_listener(channel, count)
    runs: Counter[int] = Counter()
    rec = Recorder()
    # a 30 s poll: real jobs are found through their own notifications, among the garbage
    worker = aioqueue.Worker(
        q, _tasks(runs), concurrency=20, hooks=[rec], **{**FAST, "poll_interval": 30}
    )
    exited = anyio.Event()
    ids: list[int] = []
    batches, size = 50, 400

    async def run_worker() -> None:
        await worker.run()
        exited.set()

    async def flood(first: int, last: int) -> None:
        for b in range(first, last):  # each NOTIFY its own transaction
            for payload in _spoofs(b, size):
                await low.execute("SELECT pg_notify($1, $2)", channel, payload)

    async def real_jobs() -> None:
        for b in range(20):  # 1,000 real jobs meanwhile
            outs = await q.enqueue_many(
                [{"kind": "work", "payload": b * 50 + i} for i in range(50)]
            )
            ids.extend(o.id for o in outs)
            await anyio.sleep(0.1)

    try:
        with pytest.raises(asyncpg.InsufficientPrivilegeError):  # it can read nothing
            await low.fetch(f'SELECT * FROM "{schema}".jobs')
        rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        async with anyio.create_task_group() as tg:
            tg.start_soon(run_worker)
            await rec.wait_for("worker_started")
            assert worker._producer is not None
            # 1. the flood alone (10,000): every claim it causes finds nothing
            claims_before = worker._producer.claims
            t0 = time.monotonic()
            await flood(0, batches // 2)
            alone_seconds = time.monotonic() - t0
            alone_claims = worker._producer.claims - claims_before
            # 2. the flood (10,000 more) while 1,000 real jobs flow
            t1 = time.monotonic()
            async with anyio.create_task_group() as load:
                load.start_soon(flood, batches // 2, batches)
                load.start_soon(real_jobs)
            await rec.wait(lambda r: _done(r) >= set(ids), timeout=30)
            mixed_seconds = time.monotonic() - t1
            # still woken by a real notification (not the 30 s poll) once the flood is over
            probe = await q.enqueue("work", "probe")
            await rec.wait_for("completed", probe.id, timeout=5)
            assert not exited.is_set()
            await worker.stop(timeout=5)
        rss_growth_mb = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - rss_before) / 1024
        await counter.fetchval("SELECT 1")
        usage = await counter.fetchval("SELECT pg_notification_queue_usage()")
    finally:
        await low.close()
        await counter.close()
    await _assert_invariants(q.pool, schema, [*ids, probe.id], rec)
    assert set(runs.values()) == {1}  # no job ran twice
    assert not rec.of("lease_lost") and not rec.of("cancelled")
    assert delivered >= batches * (size - 8)  # the flood did reach the channel
    # the flood costs about one claim per WAKE_COOLDOWN (50 ms), not one per notification
    assert alone_claims / alone_seconds <= 1.5 / WAKE_COOLDOWN, (alone_claims, alone_seconds)
    assert rss_growth_mb < 100
    assert usage < 0.01
    print(
        f"\nD3: {batches * size} spoofed NOTIFYs ({delivered} delivered incl. real hints); "
        f"flood alone {alone_seconds:.1f} s: {alone_claims} claims "
        f"({alone_claims / alone_seconds:.0f}/s); with 1,000 real jobs: all done in "
        f"{mixed_seconds:.1f} s, each once; peak RSS +{rss_growth_mb:.1f} MB, "
        f"queue usage {usage:.6f}"
    )


# -- D5 long and multi-byte kinds and queue names -----------------------------------------------

LONG_NAMES = {
    "63 bytes": "k" * 63,  # PostgreSQL's identifier limit: never used as a channel name
    "64 bytes": "k" * 64,
    "128 bytes": "k" * 128,  # the documented maximum
    "2-byte UTF-8, 128 bytes": "é" * 64,
    "4-byte UTF-8, 128 bytes": "\U0001f600" * 32,
    "mixed UTF-8, RTL mark": "ж" * 20 + "€" * 20 + "\u202e" + "\U0001f44d" * 6,
}


async def test_long_and_multibyte_kinds_and_queue_names_run_end_to_end(
    q: aioqueue.Queue,
) -> None:
    """D5: Enqueue-side limits are tested in services/test_input_limits.py; here such names go
    through a worker, woken by notifications (the channel never depends on them)."""
    names = list(LONG_NAMES.values())
    assert all(len(n.encode()) <= 128 for n in names)
    runs: Counter[int] = Counter()
    tasks = _tasks(runs, *names)
    with pytest.raises(aioqueue.ConfigurationError, match="1-128 bytes"):
        tasks.task("k" * 200)(lambda ctx, payload: None)
    with pytest.raises(aioqueue.InvalidJobError, match="kind"):
        await q.enqueue("k" * 200)
    with pytest.raises(aioqueue.InvalidJobError, match="queue_name"):
        await q.enqueue(names[0], queue_name="q" * 200)
    outs: dict[int, tuple[str, str]] = {}
    # a 30 s poll: every job below is found through its notification
    async with running_worker(q, tasks, poll_interval=30) as (_, rec):
        for name in names:
            for queue_name in (name, name[::-1]):  # the same name as a serial queue
                for n in (1, 2):  # one at a time: a queue's next job waits for the poll
                    out = await q.enqueue(name, {"n": n}, queue_name=queue_name, unique_key=name)
                    outs[out.id] = (name, queue_name)
                    await rec.wait_for("completed", out.id, timeout=5)
        many = await q.enqueue_many(
            [{"kind": n, "payload": i, "queue_name": n} for i, n in enumerate(names)]
        )
        outs.update({o.id: (n, n) for o, n in zip(many, names, strict=True)})
        await rec.wait(lambda r: _done(r) >= set(outs), timeout=5)
    for job_id, (name, queue_name) in outs.items():
        job = await q.get_job(job_id)
        assert (job.kind, job.queue_name, job.state) == (name, queue_name, "completed")
    assert set(runs.values()) == {1}
    print(f"\nD5: {len(outs)} jobs over {len(names)} kinds of 63-128 bytes, woken by NOTIFY")


async def test_cli_worker_with_no_listen(q: aioqueue.Queue, dsn: str) -> None:
    """C9: `aioqueue worker --no-listen`: the real CLI worker opens no LISTEN connection and still
    runs jobs, found by its polls."""
    s = q.config.schema
    await q.pool.execute(
        f'CREATE TABLE "{s}".chaos_ledger (job_id bigint, attempt int, '
        "worker_pid int, outcome text, at timestamptz DEFAULT clock_timestamp())"
    )
    proc = await start_worker(dsn, s, "--no-listen", "--poll-interval", "0.2")
    try:
        out = await q.enqueue("sleep", {"seconds": 0})
        assert (await q.wait(out.id, timeout=20)).state == "completed"
        names = await q.pool.fetch(
            "SELECT application_name FROM pg_stat_activity WHERE application_name LIKE $1",
            f"aioqueue-%:{proc.pid}:%",
        )
        kinds = sorted(r[0].split(":")[0] for r in names)
        assert "aioqueue-claim" in kinds and "aioqueue-listener" not in kinds, kinds
    finally:
        assert await stop(proc) == 0
