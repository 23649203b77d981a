"""Hostile data (RELIABILITY H1-H4): rows written through SQL with values at and past every
edge, payloads nested deeper than a decoder goes, an event loop stopped longer than the lease,
and flushes whose fate is unknown. No row may take a worker down, hold a slot, or run twice
after it completed elsewhere; every outcome's fate is known exactly."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
import time
from pathlib import Path
from typing import Any

import anyio
import pytest

import aioqueue
from aioqueue._codec import MAX_DEPTH
from aioqueue._consumer.completer import Completer
from aioqueue._consumer.outcome import Outcome
from aioqueue.errors import PayloadEncodeError
from tests.support.worker_helpers import FAST, Recorder, drop_checks

pytestmark = pytest.mark.anyio
ROOT = Path(__file__).resolve().parents[2]


def nested(depth: int) -> Any:
    value: Any = 1
    for _ in range(depth):
        value = [value]
    return value


async def test_payload_depth_is_limited_before_anything_is_written(q: aioqueue.Queue) -> None:
    """H2: the Python API refuses payloads nested deeper than MAX_DEPTH, naming the limit;
    exactly MAX_DEPTH levels, and wide documents with many containers, are fine."""
    with pytest.raises(PayloadEncodeError, match=f"nested deeper than {MAX_DEPTH} levels"):
        await q.enqueue("k", nested(MAX_DEPTH + 1))
    with pytest.raises(PayloadEncodeError, match="nested deeper"):
        await q.enqueue("k", nested(5000))  # msgspec's own recursion limit
    with pytest.raises(PayloadEncodeError, match=r"\[1\]|index 1|spec 1"):
        await q.enqueue_many([{"kind": "k", "payload": 1}, {"kind": "k", "payload": nested(200)}])
    assert await q.pool.fetchval(f'SELECT count(*) FROM "{q.config.schema}".jobs') == 0
    await q.enqueue("k", nested(MAX_DEPTH - 1))  # the limit counts the arrays: 99 + the leaf
    await q.enqueue("k", [{"a": [i]} for i in range(5000)])  # many brackets, depth 3


# (column, SQL value): each is written through SQL into a due job the worker must settle
FUZZ: list[tuple[str, str]] = [
    ("run_at", "'-infinity'"),
    ("run_at", "'4713-01-01 00:00:00+00 BC'"),
    ("run_at", "'0001-01-01 00:00:00+00'"),
    ("run_at", "'0001-01-01 00:00:00+00'::timestamptz - interval '1 microsecond'"),
    ("created_at", "'infinity'"),
    ("created_at", "'-infinity'"),
    ("created_at", "'294276-12-31 23:59:59+00'"),
    ("created_at", "'9999-12-31 23:59:59.999999+00'"),
    ("created_at", "'10000-01-01 00:00:00+00'"),
    ("attempts", "2147483647"),
    ("attempts", "2147483646"),
    ("max_attempts", "2147483647"),
    ("max_attempts", "1"),
    ("priority", "32767"),
    ("priority", "-32768"),
    ("payload", "repeat('[', 5000) || repeat(']', 5000)"),
    ("payload", "repeat('{\"a\":', 3000) || '1' || repeat('}', 3000)"),
    ("payload", "'null'"),
    ("payload", "'\"\\u00e9\"'"),
    ("payload", "to_jsonb(repeat('x', 2000000))"),
    ("flags", "ARRAY[NULL]::text[]"),
    ("flags", "'{{a,b},{c,d}}'::text[]"),
    ("flags", "(SELECT array_agg(i::text) FROM generate_series(1, 32) AS i)"),
    ("queue_name", "repeat('q', 128)"),
    ("unique_key", "repeat('u', 512)"),
]


async def test_fuzzed_rows_written_through_sql_are_all_settled_by_a_live_cli_worker(
    q: aioqueue.Queue, dsn: str
) -> None:
    """H1: extreme values in every column the worker reads, written through SQL (one row per
    value, among normal jobs). A real CLI worker run with --once settles every one of them
    (completed, or failed for good with an error naming the problem), never exits early, and
    never holds one running."""
    s = q.config.schema
    await drop_checks(q.pool, s)  # rows as an older install may hold them
    ids: dict[int, str] = {}
    for column, value in FUZZ:
        expr = value if column != "payload" else f"({value})::jsonb"
        row_id = await q.pool.fetchval(
            f"INSERT INTO \"{s}\".jobs (kind, {column}) VALUES ('touch', {expr}) RETURNING id"
        )
        ids[row_id] = f"{column}={value}"
    normal = await q.enqueue_many([{"kind": "touch", "payload": i} for i in range(20)])
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "aioqueue", "--dsn", dsn, "--schema", s, "worker",
        "tests.support.hostile_tasks:tasks", "--once", "--concurrency", "4",
        cwd=ROOT, stderr=asyncio.subprocess.PIPE,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )  # fmt: skip
    _, err = await asyncio.wait_for(proc.communicate(), 90)
    assert proc.returncode == 0, err.decode()[-2000:]
    assert b"Traceback" not in err, err.decode()[-2000:]
    rows = await q.pool.fetch(
        f"SELECT id, state::text AS state, error->>'message' AS message "
        f'FROM "{s}".jobs WHERE id = ANY($1)',
        [*ids, *(o.id for o in normal)],
    )
    states = {r["id"]: (r["state"], r["message"]) for r in rows}
    unsettled = {
        ids.get(i, i): st for i, st in states.items() if st[0] not in ("completed", "failed")
    }
    assert not unsettled
    assert all(states[o.id][0] == "completed" for o in normal)
    for job_id, what in ids.items():
        state, message = states[job_id]
        if state == "failed":
            assert message and ("cannot be decoded" in message), (what, message)
    failed = {ids[i] for i, (st, _) in states.items() if i in ids and st == "failed"}
    # the undecodable ones, and only those
    assert failed == {
        "run_at='-infinity'",
        "run_at='4713-01-01 00:00:00+00 BC'",
        "run_at='0001-01-01 00:00:00+00'::timestamptz - interval '1 microsecond'",
        "created_at='infinity'",
        "created_at='-infinity'",
        "created_at='294276-12-31 23:59:59+00'",
        "created_at='10000-01-01 00:00:00+00'",
        "payload=repeat('[', 5000) || repeat(']', 5000)",
        "payload=repeat('{\"a\":', 3000) || '1' || repeat('}', 3000)",
    }


async def test_a_worker_stopped_longer_than_the_lease_never_starts_what_it_claimed_ahead(
    q: aioqueue.Queue, dsn: str, tmp_path: Path
) -> None:
    """H3: a CLI worker with jobs claimed ahead is SIGSTOPped for longer than its lease; another
    worker rescues and completes them. After SIGCONT no job starts again once it completed
    elsewhere (the claimed-ahead ones are given back unstarted), and everything completes."""
    s = q.config.schema
    stamps = tmp_path / "stamps"
    stamps.touch()
    outs = await q.enqueue_many([{"kind": "stamp", "payload": i} for i in range(20_000)])
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "aioqueue", "--dsn", dsn, "--schema", s, "worker",
        "tests.support.hostile_tasks:tasks", "--concurrency", "2", "--lease", "2",
        "--heartbeat", "0.5", "--rescue-interval", "0.5", "--poll-interval", "0.5",
        cwd=ROOT, stderr=asyncio.subprocess.PIPE,
        env={**os.environ, "PYTHONPATH": str(ROOT), "HOSTILE_STAMPS": str(stamps)},
    )  # fmt: skip
    try:
        # claimed ahead: more jobs running under that worker than it has slots
        with anyio.fail_after(60):
            while True:
                held = await q.pool.fetchval(
                    f"SELECT count(*) FROM \"{s}\".jobs WHERE state = 'running' "
                    "AND locked_by LIKE '%:' || $1::text || ':%'",
                    str(proc.pid),
                )
                if held > 10:
                    break
                await anyio.sleep(0.01)
        proc.send_signal(signal.SIGSTOP)
        frozen = set(
            await q.pool.fetchval(
                f"SELECT array_agg(id) FROM \"{s}\".jobs WHERE state = 'running' "
                "AND locked_by LIKE '%:' || $1::text || ':%'",
                str(proc.pid),
            )
        )
        assert len(frozen) > 10
        rec = Recorder()
        other = aioqueue.Worker(
            q, _stamp_tasks(), concurrency=10, hooks=[rec], **{**FAST, "lease": 2.0}
        )
        async with anyio.create_task_group() as tg:
            tg.start_soon(other.run)
            # the other worker rescues every job the frozen one held, and completes them
            with anyio.fail_after(60):
                while await q.pool.fetchval(  # noqa: ASYNC110 - only the DB shows it
                    f'SELECT count(*) FROM "{s}".jobs WHERE id = ANY($1) '
                    "AND state <> 'completed'",
                    list(frozen),
                ):
                    await anyio.sleep(0.05)
            await other.stop()
        resumed_at = time.time()
        proc.send_signal(signal.SIGCONT)
        with anyio.fail_after(120):  # it drains the rest
            while await q.pool.fetchval(  # noqa: ASYNC110 - a subprocess: only the DB shows it
                f"SELECT count(*) FROM \"{s}\".jobs WHERE state <> 'completed'"
            ):
                await anyio.sleep(0.1)
    finally:
        if proc.returncode is None:
            proc.send_signal(signal.SIGCONT)
            proc.send_signal(signal.SIGTERM)
        _, err = await asyncio.wait_for(proc.communicate(), 60)
    finished = {
        r["id"]: r["at"]
        for r in await q.pool.fetch(
            f'SELECT id, extract(epoch FROM finished_at)::float8 AS at FROM "{s}".jobs '
            "WHERE id = ANY($1)",
            list(frozen),
        )
    }
    # A handler that had passed its lease check when SIGSTOP landed (at most one per slot)
    # starts after SIGCONT: that start was decided in time, and its completion is fenced. Any
    # later start of a job completed elsewhere would be a claimed-ahead job run after its lease.
    lines = [line.split() for line in stamps.read_text().splitlines()]
    resumed = [(int(job_id), float(at)) for job_id, at in lines if float(at) >= resumed_at]
    late = [job_id for job_id, at in resumed[2:] if job_id in finished and at > finished[job_id]]
    assert not late, f"{len(late)} jobs started again after they completed: {late[:10]}"
    assert len(outs) == 20_000
    assert b"not started, its lease may have expired" in err or not (
        frozen - set(_stamped_by_other(rec))
    )


def _stamp_tasks() -> aioqueue.Tasks:
    tasks = aioqueue.Tasks()

    @tasks.task("stamp")
    async def stamp(ctx: aioqueue.JobContext, payload: Any) -> None:
        return None

    return tasks


def _stamped_by_other(rec: Recorder) -> list[int]:
    return [e.job_id for e in rec.of("completed") if e.job_id is not None]


class _Flaky:
    """Queries whose completion statement commits, then acts as if the reply were lost (the
    connection broke during the commit): the write's fate is unknown to the completer."""

    def __init__(self, queries: Any, *, hold: anyio.Event | None = None) -> None:
        self._queries = queries
        self.calls = 0
        self.hold = hold
        self.written = anyio.Event()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._queries, name)

    async def job_complete_many(self, db: Any, outcomes: Any) -> Any:
        self.calls += 1
        rows = await self._queries.job_complete_many(db, outcomes=outcomes)
        self.written.set()
        if self.hold is not None:
            await self.hold.wait()  # the reply is still on its way
            return rows
        if self.calls == 1:
            raise ConnectionResetError("connection lost while committing")
        return rows


async def _claimed_outcome(q: aioqueue.Queue) -> Outcome:
    out = await q.enqueue("work", 1)
    [row] = await q.queries.job_claim(
        q.pool, kinds=["work"], default_max_attempts=[3], forbidden_flags=[], batch=1,
        worker_id="test", lease=60,
    )  # fmt: skip
    assert row["id"] == out.id
    return Outcome(
        id=out.id, lease_token=row["lease_token"], kind="work", attempt=1,
        state="completed", result="1",
    )  # fmt: skip


async def test_an_outcome_whose_commit_reply_was_lost_is_known_as_accepted(
    q: aioqueue.Queue,
) -> None:
    """H4: the first write commits but the completer sees a connection error; the resend is
    rejected by the fence, and the completer then finds the outcome already written under its
    own lease: accepted, not 'lease lost'."""
    outcome = await _claimed_outcome(q)
    flaky = _Flaky(q.queries)
    flushed: list[set[int]] = []
    completer = Completer(
        q.pool, flaky, on_flushed=lambda b, a: flushed.append(a),  # type: ignore[arg-type]
        flush_interval=0.01, flush_size=1,
    )  # fmt: skip
    async with anyio.create_task_group() as tg:
        await tg.start(completer.run)
        completer.put(outcome)
        with anyio.fail_after(10):
            while not flushed:
                await completer.wait_idle()
        tg.cancel_scope.cancel()
    assert flaky.calls == 2
    assert flushed == [{outcome.id}]
    assert (await q.get_job(outcome.id)).state is aioqueue.JobState.COMPLETED


async def test_a_flush_in_flight_at_stop_is_not_cancelled_and_not_resent(
    q: aioqueue.Queue,
) -> None:
    """H4: the worker stops while a flush's commit is in flight. The write is shielded: its
    reply is awaited (accepted), instead of the flush being cancelled and its outcome resent
    (which the fence would reject as 'lease lost')."""
    outcome = await _claimed_outcome(q)
    flaky = _Flaky(q.queries, hold=anyio.Event())
    flushed: list[set[int]] = []
    completer = Completer(
        q.pool, flaky, on_flushed=lambda b, a: flushed.append(a),  # type: ignore[arg-type]
        flush_interval=0.01, flush_size=1,
    )  # fmt: skip
    async with anyio.create_task_group() as tg:
        await tg.start(completer.run)
        completer.put(outcome)
        with anyio.fail_after(10):
            await flaky.written.wait()
        tg.cancel_scope.cancel()  # the stop, while the reply is on its way
        assert flaky.hold is not None
        flaky.hold.set()
    assert flaky.calls == 1
    assert flushed == [{outcome.id}]
