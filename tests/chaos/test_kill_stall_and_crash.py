"""T2 chaos scenarios of the reliability plan (../shared/RELIABILITY.md, section 8): A2, A4,
A7, B3, B7 and C2. Worker subprocesses run the real CLI (``start_worker``); tasks record every
execution in the ``chaos_ledger`` table on their own connection; a trigger records every state
change of a job, so "ever claimed" and "completed once" are read from the database, not guessed.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import shutil
import signal
import sys
import tempfile
import time
from collections import Counter
from collections.abc import AsyncIterator
from pathlib import Path

import anyio
import asyncpg
import pytest

import aioqueue
from aioqueue._db import embedded
from tests.support.processes import (
    check_invariants,
    completed,
    count,
    ledger,
    start_worker,
    stop,
    until,
)

pytestmark = [pytest.mark.anyio, pytest.mark.chaos]
LEASE = 2.0  # tests.support.processes.SHORT
PRIVATE_SERVERS = Path(__file__).resolve().parents[2] / ".aioqueue" / "private"
LOG_RECORD = re.compile(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d+ [A-Z]+ ")  # the CLI's format


# -- harness -------------------------------------------------------------------------------------


async def track_transitions(pool: asyncpg.Pool, schema: str) -> None:
    """Record every state change of every job (in the changing transaction: a rolled-back or
    crashed change leaves no row)."""
    await pool.execute(f"""
        CREATE TABLE "{schema}".transitions (
            job_id bigint, old_state text, new_state text, lease_token bigint,
            at timestamptz DEFAULT clock_timestamp());
        CREATE FUNCTION "{schema}".log_transition() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
            INSERT INTO "{schema}".transitions (job_id, old_state, new_state, lease_token)
            VALUES (NEW.id, OLD.state, NEW.state, coalesce(NEW.lease_token, OLD.lease_token));
            RETURN NULL;
        END $$;
        CREATE TRIGGER log_transition AFTER UPDATE ON "{schema}".jobs FOR EACH ROW
            WHEN (OLD.state IS DISTINCT FROM NEW.state)
            EXECUTE FUNCTION "{schema}".log_transition();
    """)


async def transitions_to(pool: asyncpg.Pool, schema: str, state: str) -> Counter[int]:
    """How many times each job entered ``state``."""
    rows = await pool.fetch(
        f'SELECT job_id FROM "{schema}".transitions WHERE new_state = $1', state
    )
    return Counter(r["job_id"] for r in rows)


async def check_one_accepted_completion(pool: asyncpg.Pool, schema: str, ids: list[int]) -> None:
    """I2: the result was written once per job (one transition into ``completed``)."""
    completions = await transitions_to(pool, schema, "completed")
    assert {i: completions[i] for i in ids} == dict.fromkeys(ids, 1), "I2"


async def jobs_by_state(pool: asyncpg.Pool, schema: str, ids: list[int]) -> dict[str, list[int]]:
    """state -> the attempts of each job in it."""
    out: dict[str, list[int]] = {}
    rows = await pool.fetch(
        f'SELECT state::text, attempts FROM "{schema}".jobs WHERE id = ANY($1)', ids
    )
    for r in rows:
        out.setdefault(r["state"], []).append(r["attempts"])
    return out


class Stderr:
    """A worker subprocess's stderr, read in the background (echoed, so pytest shows it)."""

    def __init__(self) -> None:
        self.lines: list[str] = []
        self._changed = anyio.Event()

    async def read(self, stream: asyncio.StreamReader) -> None:
        async for raw in stream:
            line = raw.decode(errors="replace")
            sys.stderr.write(line)
            self.lines.append(line)
            self._changed.set()
            self._changed = anyio.Event()

    def count(self, needle: str) -> int:
        return sum(needle in line for line in self.lines)

    def crashes(self) -> list[str]:
        """Tracebacks (with what surrounds them), except asyncpg's own warning when it cannot
        refill a pool (logged with its traceback, at a backoff doubling up to 60 s, while the
        server is down). A crash would print one after no log line, or after another one."""
        out, record = [], ""
        for i, line in enumerate(self.lines):
            if LOG_RECORD.match(line):
                record = line
            elif line.startswith("Traceback") and "asyncpg.pool: Failed to restore" not in record:
                out.append("".join([record, "...\n", *self.lines[max(0, i - 3) : i + 20]]))
        return out

    async def wait_for(self, needle: str, timeout: float) -> None:
        with anyio.fail_after(timeout):
            while not self.count(needle):
                await self._changed.wait()


@contextlib.asynccontextmanager
async def logged_worker(
    dsn: str, schema: str, *extra: str
) -> AsyncIterator[tuple[asyncio.subprocess.Process, Stderr]]:
    """A CLI worker whose stderr is collected; killed at the end if still running."""
    proc = await start_worker(dsn, schema, *extra, stderr=asyncio.subprocess.PIPE)
    assert proc.stderr is not None
    err = Stderr()
    async with anyio.create_task_group() as tg:
        tg.start_soon(err.read, proc.stderr)
        try:
            yield proc, err
        finally:
            if proc.returncode is None:
                proc.kill()
                await proc.wait()


async def create_ledger(pool: asyncpg.Pool, schema: str) -> None:
    await pool.execute(
        f'CREATE TABLE "{schema}".chaos_ledger (job_id bigint, attempt int, worker_pid int, '
        "outcome text, at timestamptz DEFAULT clock_timestamp())"
    )


@pytest.fixture
async def chaos(q: aioqueue.Queue) -> aioqueue.Queue:
    """The shared test server's queue, with the ledger and the transition log."""
    await create_ledger(q.pool, q.config.schema)
    await track_transitions(q.pool, q.config.schema)
    return q


@contextlib.asynccontextmanager
async def private_server(schema: str) -> AsyncIterator[tuple[Path, str]]:
    """A server of this test's own (data dir, DSN), to stop, crash and restart; never the
    shared test server. Its folder is under the repository's .aioqueue/, not pytest's
    tmp_path: as root the server runs as its own user, and every pytest session (others run
    concurrently) resets /tmp/pytest-of-root to 0700, locking that user out of its data."""
    if os.environ.get("AIOQUEUE_TEST_DSN"):
        pytest.skip("needs the embedded server to stop and restart it")
    PRIVATE_SERVERS.mkdir(parents=True, exist_ok=True)
    folder = Path(tempfile.mkdtemp(prefix=f"{schema}-", dir=PRIVATE_SERVERS))
    data = folder / "pg"
    try:
        server = await anyio.to_thread.run_sync(embedded.ensure_server, data)
        try:
            yield data, server
        finally:
            await anyio.to_thread.run_sync(embedded.stop_server, data)
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def _payload_seconds(schema: str, seconds: float) -> str:
    """The re-runs must be quick: handlers read the payload when they start."""
    return f'UPDATE "{schema}".jobs SET payload = \'{{"seconds": {seconds}}}\''


# -- A: worker death, leases and fencing ---------------------------------------------------------


async def test_sigkill_with_queued_jobs_only_free_slots_were_claimed(
    chaos: aioqueue.Queue, dsn: str
) -> None:
    """A2: no prefetch. kill -9 with 10 of 50 jobs running at concurrency 10: exactly 10 were
    ever claimed; the 40 others never left ``pending``; the 10 are rescued once their lease
    expires, and a second worker completes all 50."""
    q, s = chaos, chaos.config.schema
    outs = await q.enqueue_many([{"kind": "sleep", "payload": {"seconds": 30}} for _ in range(50)])
    ids = [o.id for o in outs]
    a = await start_worker(dsn, s, "--concurrency", "10")
    try:
        await until(lambda: count(q, "started", 10), 30)
        a.send_signal(signal.SIGKILL)
        await a.wait()
        killed_at = time.monotonic()
    finally:
        if a.returncode is None:
            a.kill()
    claimed = await transitions_to(q.pool, s, "running")
    assert sum(claimed.values()) == 10  # never more than the free slots, ever
    states = await jobs_by_state(q.pool, s, ids)
    assert states == {"running": [1] * 10, "pending": [0] * 40}
    await q.pool.execute(_payload_seconds(s, 0))
    b = await start_worker(dsn, s, "--concurrency", "10")
    try:
        await until(lambda: completed(q, 50), 30)
        recovered = time.monotonic() - killed_at
    finally:
        code = await stop(b)
    assert code == 0
    await check_invariants(q, ids)
    await check_one_accepted_completion(q.pool, s, ids)
    rescued = await transitions_to(q.pool, s, "scheduled")  # the rescuer's move
    assert set(rescued) == set(claimed) and set(rescued.values()) == {1}
    attempts = {
        r["id"]: r["attempts"]
        for r in await q.pool.fetch(f'SELECT id, attempts FROM "{s}".jobs WHERE id = ANY($1)', ids)
    }
    assert {attempts[i] for i in claimed} == {2}  # the killed attempt counts
    assert {attempts[i] for i in ids if i not in claimed} == {1}
    started = await ledger(q, "started")
    assert Counter(r["worker_pid"] for r in started) == {a.pid: 10, b.pid: 50}
    # lease 2 s + rescue interval 0.5 s + backoff e^1 s + a generous margin
    assert recovered < LEASE + 0.5 + 2.8 + 10
    print(f"A2: 10 of 50 claimed before the kill; all 50 done {recovered:.1f} s after it")


async def test_blocked_event_loop_outlives_the_lease_and_its_completion_is_fenced(
    chaos: aioqueue.Queue, dsn: str, tmp_path: Path
) -> None:
    """A4: a handler blocks worker A's event loop (``time.sleep``) past its lease; worker B
    rescues and completes the job; A's late completion is rejected; the result is B's; A logs
    the event-loop lag. A stays blocked until B has completed the job (a file the handler
    waits for), so a slow start of B on a loaded host cannot let A rescue the job itself."""
    q, s = chaos, chaos.config.schema
    release = tmp_path / "release-a"
    out = await q.enqueue("block", {"until_file": str(release)})
    async with logged_worker(dsn, s) as (a, a_err):
        await until(lambda: count(q, "started", 1), 30)
        await q.pool.execute(_payload_seconds(s, 0))  # B's run returns at once
        async with logged_worker(dsn, s) as (b, _):
            await until(lambda: completed(q, 1), 60)
            release.touch()
            await a_err.wait_for(f"job {out.id} rejected: lease lost", 30)
            assert await stop(b) == 0
        assert await stop(a) == 0
    job = await q.get_job(out.id)
    assert job.state is aioqueue.JobState.COMPLETED
    assert job.result == f"done by {b.pid}"  # B's, not the zombie's
    assert job.attempts == 2
    started = await ledger(q, "started")
    assert [(r["worker_pid"], r["attempt"]) for r in started] == [(a.pid, 1), (b.pid, 2)]
    assert a_err.count("outcome completed of job") == 1
    assert a_err.count("heartbeat: event loop was blocked for") == 1  # the lag warning
    await check_one_accepted_completion(q.pool, s, [out.id])
    lag = next(line for line in a_err.lines if "event loop was blocked" in line)
    print(f"A4: A's completion rejected; A logged: {lag.strip()}")


async def test_table_lock_longer_than_the_lease_stalls_heartbeats_safely(
    chaos: aioqueue.Queue, dsn: str
) -> None:
    """A7: 50 running jobs; another session holds ACCESS EXCLUSIVE on the jobs table for 2.5x
    the lease. Half the handlers return during the lock (their outcomes wait behind it), half
    are still running when it ends, their leases long expired (the rescuer and the heartbeat
    race for them). Re-runs are allowed (at-least-once), but nothing is lost (I1), each result
    is written once (I2), no expired lease is left running (I3), and the worker neither crashes
    nor hangs: it finishes the drain and stops cleanly."""
    q, s = chaos, chaos.config.schema
    n, hold = 50, 2.5 * LEASE
    outs = await q.enqueue_many(
        [{"kind": "sleep", "payload": {"seconds": 2 if i % 2 else hold + 2}} for i in range(n)]
    )
    ids = [o.id for o in outs]
    locker = await asyncpg.connect(dsn)
    try:
        async with logged_worker(dsn, s, "--concurrency", "50", "--stop-timeout", "5") as (
            proc,
            err,
        ):
            await until(lambda: count(q, "started", n), 30)
            async with locker.transaction():
                await locker.execute(f'LOCK TABLE "{s}".jobs IN ACCESS EXCLUSIVE MODE')
                locked_at = time.monotonic()
                # the short half returns while the lock is held: its outcomes queue behind it
                await until(lambda: count(q, "finished", n // 2), 30)
                # the CLI says it once (each heartbeat's timeout is shown with -v)
                await err.wait_for("database unavailable (TimeoutError in the heartbeat", 30)
                # hold the lock for `hold` seconds in all (a scenario parameter, not a settle)
                await anyio.sleep(max(0.0, locked_at + hold - time.monotonic()))
                assert proc.returncode is None  # alive
            released_at = time.monotonic()
            await q.pool.execute(_payload_seconds(s, 0))  # re-runs (if any) are quick
            await until(lambda: completed(q, n), 30)
            drained = time.monotonic() - released_at
            assert proc.returncode is None
            stopping = time.monotonic()
            assert await stop(proc) == 0
            stopped_in = time.monotonic() - stopping
    finally:
        await locker.close()
    await check_invariants(q, ids)  # I1, I3, I4
    await check_one_accepted_completion(q.pool, s, ids)
    rescued = await transitions_to(q.pool, s, "scheduled")
    reruns = len(await ledger(q, "started")) - n
    assert reruns == sum(rescued.values())  # a job runs again only after a rescue
    assert stopped_in < 10
    assert err.crashes() == []
    print(
        f"A7: lock held {released_at - locked_at:.1f} s (lease {LEASE} s); "
        f"heartbeats timed out ({err.count('database unavailable')} outage line); "
        f"{len(rescued)} jobs rescued "
        f"and re-run, {err.count('lease lost; handler cancelled')} handlers cancelled for a lost "
        f"lease, {err.count('rejected: lease lost')} stale outcomes fenced; drained "
        f"{drained:.1f} s after the release; stopped in {stopped_in:.1f} s"
    )


# -- B: graceful shutdown ------------------------------------------------------------------------


async def test_sigterm_leaves_unstarted_jobs_unclaimed(chaos: aioqueue.Queue, dsn: str) -> None:
    """B3: concurrency 5, 50 jobs: the worker never claims past its free slots, so on SIGTERM
    the 45 unstarted jobs are ``pending`` at once (never claimed), attempts 0; the 5 running ones
    are released with their attempt given back."""
    q, s = chaos, chaos.config.schema
    outs = await q.enqueue_many([{"kind": "sleep", "payload": {"seconds": 30}} for _ in range(50)])
    ids = [o.id for o in outs]
    proc = await start_worker(dsn, s, "--concurrency", "5", "--stop-timeout", "1")
    try:
        await until(lambda: count(q, "started", 5), 30)
        proc.send_signal(signal.SIGTERM)
        right_after = await jobs_by_state(q.pool, s, ids)
        assert await asyncio.wait_for(proc.wait(), 10) == 0
    finally:
        if proc.returncode is None:
            proc.kill()
    assert right_after == {"running": [1] * 5, "pending": [0] * 45}
    claimed = await transitions_to(q.pool, s, "running")
    assert sum(claimed.values()) == 5  # the 45 were never claimed, not even for a moment
    assert await jobs_by_state(q.pool, s, ids) == {"pending": [0] * 50}
    assert len(await ledger(q, "started")) == 5


async def test_sigterm_while_the_database_is_down() -> None:
    """B7: PostgreSQL stops while jobs run; SIGTERM: the worker gives up the release writes
    after the completer's final timeout, logs it, and exits cleanly; after PostgreSQL is back
    the jobs are rescued by lease expiry and a new worker completes them (I1)."""
    stop_timeout, final_flush = 1.0, 5.0  # --stop-timeout; Completer.final_timeout
    async with private_server("b7") as (data, server):
        q = await aioqueue.Queue.connect(server, schema="b7")
        try:
            await create_ledger(q.pool, "b7")
            outs = await q.enqueue_many(
                [{"kind": "sleep", "payload": {"seconds": 30}} for _ in range(5)]
            )
            ids = [o.id for o in outs]
            async with logged_worker(
                server, "b7", "--concurrency", "5", "--stop-timeout", str(stop_timeout)
            ) as (proc, err):
                await until(lambda: count(q, "started", 5), 30)
                await anyio.to_thread.run_sync(embedded.stop_server, data)
                signalled = time.monotonic()
                proc.send_signal(signal.SIGTERM)
                code = await asyncio.wait_for(proc.wait(), stop_timeout + final_flush + 10)
                exited_in = time.monotonic() - signalled
            assert code == 0
            assert err.count("completer: gave up writing 5 outcomes") == 1
            assert err.crashes() == []
            assert exited_in < stop_timeout + final_flush + 4
            await anyio.to_thread.run_sync(embedded.ensure_server, data)
            await q.pool.expire_connections()
            back_at = time.monotonic()
            # the release was never written: still running under the dead worker's lease
            assert await jobs_by_state(q.pool, "b7", ids) == {"running": [1] * 5}
            await q.pool.execute(_payload_seconds("b7", 0))
            b = await start_worker(server, "b7", "--concurrency", "5")
            try:
                await until(lambda: completed(q, 5), 30)
                recovered = time.monotonic() - back_at
            finally:
                code = await stop(b)
            assert code == 0
            await check_invariants(q, ids)
            assert await jobs_by_state(q.pool, "b7", ids) == {"completed": [2] * 5}
        finally:
            await q.close()
    print(
        f"B7: exited {exited_in:.1f} s after SIGTERM with the database down; "
        f"jobs done {recovered:.1f} s after it came back"
    )


# -- C: PostgreSQL crash -------------------------------------------------------------------------


async def test_crash_restart_during_a_drain_loses_nothing() -> None:
    """C2: ``pg_ctl stop -m immediate`` (a crash) during a drain, down a few seconds (longer than
    the lease), then started again: enqueues during the outage fail fast with a connection error
    and write nothing; every job completes once (I1, I2); re-runs are bounded by the jobs in
    flight."""
    n, outage = 2000, 1.5 * LEASE
    async with private_server("c2") as (data, server):
        q = await aioqueue.Queue.connect(server, schema="c2")
        try:
            await create_ledger(q.pool, "c2")
            await track_transitions(q.pool, "c2")
            outs = await q.enqueue_many(
                [{"kind": "sleep", "payload": {"seconds": 0.01}} for _ in range(n)]
            )
            ids = [o.id for o in outs]
            async with logged_worker(server, "c2", "--concurrency", "20") as (proc, err):
                await until(lambda: count(q, "finished", 300), 60)
                await anyio.to_thread.run_sync(lambda: embedded.stop_server(data, mode="immediate"))
                down_at = time.monotonic()
                with (
                    anyio.fail_after(10),
                    pytest.raises(
                        (OSError, asyncpg.InterfaceError, asyncpg.PostgresConnectionError)
                    ) as refused,
                ):
                    await q.enqueue("sleep", {"seconds": 0})
                failed_in = time.monotonic() - down_at
                # the outage itself lasts `outage` seconds (a scenario parameter)
                await anyio.sleep(max(0.0, down_at + outage - time.monotonic()))
                await anyio.to_thread.run_sync(embedded.ensure_server, data)
                await q.pool.expire_connections()
                back_at = time.monotonic()
                await until(lambda: completed(q, n), 90)
                drained = time.monotonic() - back_at
                assert proc.returncode is None  # the worker survived the crash
                assert await stop(proc) == 0
            await check_invariants(q, ids)
            await check_one_accepted_completion(q.pool, "c2", ids)
            assert await q.pool.fetchval("SELECT count(*) FROM c2.jobs") == n  # nothing silent
            reruns = len(await ledger(q, "started")) - n
            assert reruns <= 40  # only jobs in flight at the crash
            assert err.crashes() == []
        finally:
            await q.close()
    print(
        f"C2: enqueue during the outage failed in {failed_in:.2f} s "
        f"({type(refused.value).__name__}); {reruns} re-runs; drained {drained:.1f} s after "
        "the restart"
    )
