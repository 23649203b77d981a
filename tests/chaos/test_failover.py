"""A real failover: a primary and a synchronous streaming standby (Debian's PostgreSQL 15, both
started here), producers and a worker on a multi-host DSN with target_session_attrs=read-write.
The primary is killed (``pg_ctl stop -m immediate``) and the standby promoted; then the old
primary's host comes back as a standby of the new one, and the same happens the other way.
Nothing restarts: the worker (claims, notifier, completer, heartbeat) and the producers carry on,
no enqueue that returned is lost and no acknowledged completion is undone."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import anyio
import asyncpg
import httpx
import pytest

import aioqueue
from aioqueue.dashboard import create_app
from tests.support.failover_tasks import tasks
from tests.support.faultproxy import fault_proxy
from tests.support.pgcluster import USER, Cluster, Node, cluster, wait_streaming
from tests.support.worker_helpers import FAST, Recorder

pytestmark = pytest.mark.anyio

SYNC = "synchronous_standby_names='*'"  # any standby: a commit returns once it has the WAL

# what a producer sees while there is no writable server: retried with the same unique_key
RETRYABLE = (
    OSError,
    asyncpg.PostgresError,
    asyncpg.InterfaceError,
    asyncpg.InternalClientError,  # a session the server ended while idle, found on use
    TimeoutError,
)


def multi_host(*nodes: Node) -> str:
    hosts = ",".join(f"127.0.0.1:{n.port}" for n in nodes)
    return f"postgresql://aioqueue@{hosts}/postgres?target_session_attrs=read-write"


class Ledger:
    """Every enqueue that returned (unique_key -> job id), with when it returned."""

    def __init__(self) -> None:
        self.ids: dict[str, int] = {}
        self.returned_at: list[float] = []
        self.retries = 0
        self.changed = anyio.Event()

    async def produce(self, q: aioqueue.Queue, name: str, stop: anyio.Event) -> None:
        n = 0
        while not stop.is_set():
            key = f"{name}-{n}"
            while True:
                try:
                    with anyio.fail_after(10):
                        out = await q.enqueue("work", n, unique_key=key)
                    break
                except RETRYABLE:
                    self.retries += 1  # the commit may have landed: the same key dedupes it
                    await anyio.sleep(0.05)
            self.ids[key] = out.id
            self.returned_at.append(time.monotonic())
            self.changed.set()
            self.changed = anyio.Event()
            n += 1

    def count_after(self, t: float) -> int:
        return sum(1 for r in self.returned_at if r > t)


class Completions:
    """A worker hook: when each job's completion was acknowledged (its outcome committed)."""

    def __init__(self) -> None:
        self.at: dict[int, float] = {}

    def __call__(self, event: aioqueue.Event) -> None:
        if event.type == "completed" and event.job_id is not None:
            self.at[event.job_id] = time.monotonic()


@pytest.fixture
async def pg_cluster() -> AsyncIterator[Cluster]:
    with cluster() as made:
        yield made


async def _fail_over(old: Node, new: Node) -> float:
    """Kill ``old`` and promote ``new``; returns when the promotion has finished."""
    await anyio.to_thread.run_sync(old.kill)
    await anyio.to_thread.run_sync(new.promote)
    return time.monotonic()


async def _check_ledger(dsn: str, schema: str, ledger: Ledger, acked: dict[int, float]) -> None:
    """On the (new) primary: every job whose enqueue returned exists, every acknowledged
    completion is still a completion."""
    returned = set(ledger.ids.values())  # the producers go on meanwhile
    conn = await asyncpg.connect(dsn)
    try:
        assert not await conn.fetchval("SELECT pg_is_in_recovery()")
        rows = await conn.fetch(
            f'SELECT id, state FROM "{schema}".jobs WHERE id = ANY($1::bigint[])', list(returned)
        )
    finally:
        await conn.close()
    states = {r["id"]: r["state"] for r in rows}
    lost = returned - set(states)
    assert not lost, f"{len(lost)} jobs whose enqueue returned are gone: {sorted(lost)[:10]}"
    undone = {i for i in acked if states.get(i) != "completed"}
    assert not undone, f"acknowledged completions undone: {sorted(undone)[:10]}"


async def _all_completed(q: aioqueue.Queue, schema: str, ids: set[int]) -> None:
    """Until every job of ``ids`` is completed (by either worker): polls the table."""
    with anyio.fail_after(30):
        while True:
            rows = await q.pool.fetch(
                f'SELECT id FROM "{schema}".jobs WHERE id = ANY($1::bigint[]) '
                "AND state = 'completed'",
                list(ids),
            )
            if len(rows) == len(ids):
                return
            await anyio.sleep(0.1)


async def _until_workers(q: aioqueue.Queue, n: int) -> None:
    """Until ``n`` workers have registered (the CLI's takes seconds to import and connect)."""
    with anyio.fail_after(60):
        while len((await q.stats()).workers) < n:  # noqa: ASYNC110 - only the DB shows it
            await anyio.sleep(0.1)


async def test_rides_through_failover_with_sync_replication(
    pg_cluster: Cluster, schema: str, tmp_path: Path
) -> None:
    node1 = pg_cluster.primary(SYNC)
    node2 = pg_cluster.standby_of(node1)
    await wait_streaming(node1.dsn, sync=True)
    dsn = multi_host(node1, node2)

    producer_q = await aioqueue.Queue.connect(dsn, schema=schema)
    worker_q = await aioqueue.Queue.connect(dsn, schema=schema, migrate=False)
    rec, done = Recorder(), Completions()
    worker = aioqueue.Worker(worker_q, tasks, concurrency=20, hooks=[done, rec], **FAST)
    ledger = Ledger()
    stop = anyio.Event()
    exited = anyio.Event()
    report: list[str] = []

    async def run_worker() -> None:
        await worker.run()
        exited.set()

    async def ride_through(old: Node, new: Node, label: str) -> None:
        done_before = len(done.at)
        await rec.wait(lambda r: len(done.at) >= done_before + 100, timeout=30)
        acked = dict(done.at)  # acknowledged before the crash
        enqueued = len(ledger.ids)
        killed = time.monotonic()
        promoted = await _fail_over(old, new)
        # resumed: fresh jobs enqueued and completed on the promoted server
        await rec.wait(
            lambda r: sum(t > promoted for t in done.at.values()) >= 50,
            timeout=30,
        )
        with anyio.fail_after(30):
            while ledger.count_after(promoted) < 50:
                await ledger.changed.wait()
        first_done = min(t for t in done.at.values() if t > promoted)
        first_enqueue = min(t for t in ledger.returned_at if t > promoted)
        assert not exited.is_set()
        await _check_ledger(new.dsn, schema, ledger, acked)
        report.append(
            f"{label}: promote took {promoted - killed:.2f} s; after it, first enqueue "
            f"{first_enqueue - promoted:.2f} s, first completion {first_done - promoted:.2f} s; "
            f"{enqueued} enqueued and {len(acked)} completed before the crash, all kept"
        )

    # a second worker, as deployed: the CLI in a process of its own, never restarted
    log = tmp_path / "cli-worker.log"
    cli_worker = await anyio.open_process(
        [sys.executable, "-m", "aioqueue", "--dsn", dsn, "--schema", schema, "worker",
         "tests.support.failover_tasks:tasks", "--concurrency", "10", "--lease", "3",
         "--poll-interval", "0.2", "--rescue-interval", "0.5", "--retention", "-1"],
        stdout=subprocess.DEVNULL,
        stderr=log.open("w"),
    )  # fmt: skip
    try:
        async with anyio.create_task_group() as tg:
            tg.start_soon(run_worker)
            await rec.wait_for("worker_started")
            for name in ("a", "b"):
                tg.start_soon(ledger.produce, producer_q, name, stop)
            await _until_workers(producer_q, 2)  # the CLI worker has started too

            # 1. node1 crashes, node2 takes over
            await ride_through(node1, node2, "failover 1")

            # 2. node1's host comes back as a synchronous standby of node2 (first in the DSN,
            # accepting connections, read-only): new connections skip it
            node3 = await anyio.to_thread.run_sync(
                lambda: pg_cluster.standby_of(node2, port=node1.port)
            )
            admin = await asyncpg.connect(node2.dsn)
            try:
                await admin.execute(f"ALTER SYSTEM SET {SYNC}")
                await admin.execute("SELECT pg_reload_conf()")
            finally:
                await admin.close()
            await wait_streaming(node2.dsn, sync=True)
            fresh = await asyncpg.connect(dsn)
            try:
                assert fresh.get_settings().server_version  # connected
                assert not await fresh.fetchval("SELECT pg_is_in_recovery()")
            finally:
                await fresh.close()

            # 3. node2 crashes, the old primary's host takes over again
            await ride_through(node2, node3, "failover 2")

            stop.set()
            await _all_completed(producer_q, schema, set(ledger.ids.values()))
            assert worker._notifier is not None and worker._notifier.reconnects >= 2
            assert cli_worker.returncode is None, log.read_text()  # never exited
            cli_worker.send_signal(signal.SIGTERM)
            with anyio.fail_after(30):
                assert await cli_worker.wait() == 0, log.read_text()
            await worker.stop(timeout=10)
    finally:
        stop.set()
        if cli_worker.returncode is None:
            cli_worker.kill()
        await producer_q.close()
        await worker_q.close()
    print("\n" + "\n".join(report) + f"\nproducer retries: {ledger.retries}")


def aq(*args: str) -> dict[str, Any] | list[Any]:
    done = subprocess.run(
        [sys.executable, "-m", "aioqueue", *args, "--json"],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "AIOQUEUE_DSN": ""},
    )
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)  # type: ignore[no-any-return]


async def test_reader_on_a_standby(pg_cluster: Cluster, schema: str) -> None:
    """``read_dsn=`` / ``--read-dsn`` a standby: list_jobs, stats, history, ``aioqueue status``,
    ``jobs list`` and the dashboard read there (seen by pausing the standby's replay: they show
    its older state); enqueues and get_job go to the primary; nothing can write through the
    reader, whether it is a standby or the primary itself."""
    # remote_apply: a commit returns once the standby shows it, so its reads see every job
    primary = pg_cluster.primary(SYNC, "synchronous_commit=remote_apply")
    standby = pg_cluster.standby_of(primary)
    await wait_streaming(primary.dsn, sync=True)
    q = await aioqueue.Queue.connect(primary.dsn, schema=schema, read_dsn=standby.dsn)
    admin = await asyncpg.connect(standby.dsn)
    try:
        ids = [(await q.enqueue("work", i)).id for i in range(5)]
        assert {j.id for j in await q.list_jobs(kind="work")} == set(ids)
        # the standby stops replaying: what it serves stays at these 5 jobs
        await admin.execute("SELECT pg_wal_replay_pause()")
        async with q.pool.acquire() as conn, conn.transaction():
            await conn.execute("SET LOCAL synchronous_commit = local")  # not waiting on replay
            late = await conn.fetchval(
                f"INSERT INTO \"{schema}\".jobs (kind) VALUES ('late') RETURNING id"
            )
        assert (await q.get_job(late)).kind == "late"  # from the primary
        assert late not in {j.id for j in await q.list_jobs()}
        stats = await q.stats()
        assert stats.totals["pending"] == 5
        assert await q.history(minutes=5) is not None
        cli = ["--dsn", primary.dsn, "--read-dsn", standby.dsn, "--schema", schema]
        status = aq(*cli, "status")
        assert isinstance(status, dict) and status["totals"]["pending"] == 5, status
        listed = aq(*cli, "jobs", "list")
        assert sorted(j["id"] for j in listed) == sorted(ids), listed
        app = create_app(dsn=primary.dsn, schema=schema, read_dsn=standby.dsn)
        transport = httpx.ASGITransport(app=app)
        try:
            async with httpx.AsyncClient(transport=transport, base_url="http://dash") as http:
                page = await http.get("/jobs")
                assert page.status_code == 200 and f"/jobs/{ids[0]}" in page.text
                assert f"/jobs/{late}" not in page.text
        finally:
            await app.state.dashboard.close()
        async with q.read_pool.acquire() as conn:
            assert await conn.fetchval("SELECT pg_is_in_recovery()")
            with pytest.raises(asyncpg.ReadOnlySQLTransactionError):
                await conn.execute(f'DELETE FROM "{schema}".jobs')
        await admin.execute("SELECT pg_wal_replay_resume()")
    finally:
        await admin.close()
        await q.close()

    # read_dsn= the primary itself: the reader's sessions are read-only all the same
    q = await aioqueue.Queue.connect(primary.dsn, schema=schema, read_dsn=primary.dsn)
    try:
        assert len(await q.list_jobs()) == 6
        async with q.read_pool.acquire() as conn:
            with pytest.raises(asyncpg.ReadOnlySQLTransactionError):
                await conn.execute(f'DELETE FROM "{schema}".jobs')
            with pytest.raises(asyncpg.ReadOnlySQLTransactionError):
                await conn.execute(f'UPDATE "{schema}".jobs SET priority = 1')
    finally:
        await q.close()


@pytest.mark.parametrize("call", ["enqueue", "keyed", "enqueue_many", "enqueue_group"])
async def test_first_write_after_a_dns_switch_lands_on_the_new_primary(
    pg_cluster: Cluster, schema: str, call: str
) -> None:
    """A managed service's failover switches a DNS name: sessions opened while it pointed at a
    standby stay attached to it, read-only, after the switch. The first write after the switch
    fails on such a session and is made once more on a fresh one, which reaches the new
    primary: the caller sees it succeed. Before the switch, a write fails on fresh sessions
    too, and the error is raised (no writable server yet)."""
    primary = pg_cluster.primary(SYNC, "synchronous_commit=remote_apply")  # standby current
    standby = pg_cluster.standby_of(primary)
    await wait_streaming(primary.dsn, sync=True)
    setup = await aioqueue.Queue.connect(primary.dsn, schema=schema)
    await setup.close()

    async def write(q: aioqueue.Queue, n: int) -> int:
        if call == "enqueue_many":
            return (await q.enqueue_many([{"kind": "work", "payload": n}]))[0].id
        if call == "enqueue_group":  # a generator: the second try must get the specs again
            group = await q.enqueue_group({"kind": "work", "payload": n} for _ in range(1))
            (member,) = group.member_ids
            return member
        key = f"k{n}" if call == "keyed" else None
        return (await q.enqueue("work", n, unique_key=key)).id

    async with fault_proxy("127.0.0.1", standby.port, USER) as name:
        q = await aioqueue.Queue.connect(name.dsn("postgres"), schema=schema, migrate=False)
        try:
            with pytest.raises(asyncpg.ReadOnlySQLTransactionError):
                await write(q, 0)
            assert await q.list_jobs() == []  # reads work: this session is the standby's
            name.retarget("127.0.0.1", primary.port)
            job_id = await write(q, 1)
            assert (await q.get_job(job_id)).payload == 1
        finally:
            await q.close()
    conn = await asyncpg.connect(primary.dsn)
    try:
        assert await conn.fetchval(f'SELECT count(*) FROM "{schema}".jobs') == 1
    finally:
        await conn.close()


async def _refused_while_read_only(
    admin: asyncpg.Connection, name: str, call: Callable[[int], Awaitable[object]], what: str
) -> None:
    """Make database ``name`` read-only and end its sessions (what a server demoted to a
    standby does to them), then ``call(n)`` until the read-only sessions have refused it
    three times."""
    await admin.execute(f'ALTER DATABASE "{name}" SET default_transaction_read_only = on')
    await admin.execute(
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1", name
    )
    read_only_errors = 0
    for n in range(30):
        try:
            await call(n)
        except asyncpg.ReadOnlySQLTransactionError:
            read_only_errors += 1
            if read_only_errors == 3:
                break
        except RETRYABLE:
            pass  # a session terminated above, found dead on use
        else:
            pytest.fail(f"{what} on a read-only database")
    assert read_only_errors == 3


@pytest.mark.parametrize("keyed", [False, True])
async def test_producer_replaces_read_only_sessions(
    private_db: tuple[str, str], server_dsn: str, schema: str, keyed: bool
) -> None:
    """A producer's sessions opened while its server was read-only (a DNS name still pointing
    at the old primary, now a standby) stay read-only: after the error they are replaced, so
    the first enqueue once the server is writable again succeeds."""
    dsn, name = private_db
    admin = await asyncpg.connect(server_dsn)
    q = await aioqueue.Queue.connect(dsn, schema=schema, pool_min_size=3)
    try:
        await q.enqueue("work", 0)
        await _refused_while_read_only(
            admin,
            name,
            lambda n: q.enqueue("work", 1, unique_key=f"ro{n}" if keyed else None),
            "enqueued",
        )
        await admin.execute(f'ALTER DATABASE "{name}" RESET default_transaction_read_only')
        for i in range(5):  # the pool's sessions were replaced: none is read-only any more
            await q.enqueue("work", i, unique_key=f"k{i}" if keyed else None)
    finally:
        await admin.close()
        await q.close()


async def test_admin_calls_replace_read_only_sessions(
    private_db: tuple[str, str], server_dsn: str, schema: str
) -> None:
    """Admin and flow-control calls (retry, cancel, set_limits, pause, ...) write through the
    queue's pool like enqueue: on a read-only server they raise ReadOnlySQLTransactionError,
    and the sessions opened meanwhile are replaced, so the first call once the server is
    writable again succeeds instead of failing on a session that stays read-only."""
    dsn, name = private_db
    admin = await asyncpg.connect(server_dsn)
    q = await aioqueue.Queue.connect(dsn, schema=schema, pool_min_size=3)
    try:
        job = await q.enqueue("work", 0)
        await _refused_while_read_only(
            admin, name, lambda _: q.set_limits("work", concurrency=2), "set limits"
        )
        with pytest.raises(asyncpg.ReadOnlySQLTransactionError):
            await q.pause("work")
        await admin.execute(f'ALTER DATABASE "{name}" RESET default_transaction_read_only')
        # each first call after the failover succeeds: no session of the pool is read-only
        await q.set_limits("work", concurrency=2)
        await q.pause("work")
        await q.resume("work")
        assert (await q.cancel(job.id)).state is aioqueue.JobState.CANCELLED
        assert (await q.retry(job.id)).id != job.id
    finally:
        await admin.close()
        await q.close()
