"""Issue 17.9: what the CLI worker prints while the database is down. One aioqueue line when it
stops answering and one when it is back; no asyncpg pool tracebacks ("Failed to restore the pool
connection floor"), no line per retry. ``-v`` still shows everything."""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import sys
from pathlib import Path

import anyio
import pytest

import aioqueue
from aioqueue._db import embedded
from aioqueue._db.connect import Outage
from tests.conftest import ROOT
from tests.support.processes import SHORT, until

pytestmark = [pytest.mark.anyio, pytest.mark.chaos]

DOWN = "database unavailable"
BACK = "database available again"
ASYNCPG_FLOOR = "Failed to restore the pool connection floor"


class Lines:
    """A subprocess's stderr, read as it comes; ``wait_for`` returns once a line holds text."""

    def __init__(self, stream: asyncio.StreamReader) -> None:
        self._stream = stream
        self.lines: list[str] = []
        self._changed = anyio.Event()

    async def read(self) -> None:
        while line := await self._stream.readline():
            self.lines.append(line.decode(errors="replace").rstrip("\n"))
            self._changed.set()

    def count(self, text: str) -> int:
        return sum(text in line for line in self.lines)

    async def wait_for(self, text: str, timeout: float) -> None:
        with anyio.fail_after(timeout):
            while not self.count(text):
                self._changed = anyio.Event()
                await self._changed.wait()


async def _cli_worker(dsn: str, schema: str, *, verbose: bool) -> asyncio.subprocess.Process:
    return await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "aioqueue",
        *(["-v"] if verbose else []),
        "--dsn",
        dsn,
        "--schema",
        schema,
        "worker",
        "tests.support.chaos_tasks:tasks",
        *SHORT,
        cwd=ROOT,
        stderr=asyncio.subprocess.PIPE,
        env={**os.environ, "CHAOS_DSN": dsn, "CHAOS_SCHEMA": schema, "PYTHONPATH": str(ROOT)},
    )


async def _completed(q: aioqueue.Queue, job_id: int) -> bool:
    try:
        return bool(
            await q.pool.fetchval(
                f"SELECT state = 'completed' FROM \"{q.config.schema}\".jobs WHERE id = $1", job_id
            )
        )
    except (OSError, aioqueue.AioqueueError):
        return False


@pytest.mark.timeout(180)
@pytest.mark.parametrize("verbose", [False, True], ids=["default", "-v"])
async def test_an_outage_is_one_line_down_and_one_line_back(tmp_path: Path, verbose: bool) -> None:
    if os.environ.get("AIOQUEUE_TEST_DSN"):
        pytest.skip("needs the embedded server to stop and start it")
    data = tmp_path / "pg"
    server = await anyio.to_thread.run_sync(embedded.ensure_server, data)
    proc: asyncio.subprocess.Process | None = None
    try:
        q = await aioqueue.Queue.connect(server, schema="outage")
        await q.pool.execute(
            "CREATE TABLE outage.chaos_ledger (job_id bigint, attempt int, worker_pid int, "
            "outcome text, at timestamptz DEFAULT clock_timestamp())"
        )
        proc = await _cli_worker(server, "outage", verbose=verbose)
        assert proc.stderr is not None
        err = Lines(proc.stderr)
        async with anyio.create_task_group() as tg:
            tg.start_soon(err.read)
            first = await q.enqueue("sleep", {"seconds": 0})
            await until(lambda: _completed(q, first.id), 30)  # the worker runs
            await q.pool.expire_connections()
            await anyio.to_thread.run_sync(embedded.stop_server, data)
            await err.wait_for(DOWN, timeout=30)
            # down for a few of the worker's retries (poll 0.5 s, heartbeat 0.5 s)
            await anyio.sleep(3)
            again = await anyio.to_thread.run_sync(embedded.ensure_server, data)
            assert again == server
            await err.wait_for(BACK, timeout=30)
            after = await q.enqueue("sleep", {"seconds": 0})
            await until(lambda: _completed(q, after.id), 30)  # and runs jobs again
            proc.send_signal(signal.SIGTERM)
            assert await asyncio.wait_for(proc.wait(), 15) == 0
        await q.close()
    finally:
        if proc is not None and proc.returncode is None:
            proc.kill()
        await anyio.to_thread.run_sync(embedded.stop_server, data)
    text = "\n".join(err.lines)
    assert err.count(DOWN) == 1, text
    assert err.count(BACK) == 1, text
    if verbose:  # the retries and asyncpg's own lines are there: the quiet run hid them
        print(f"\nstderr with -v: {len(err.lines)} lines, {err.count('Traceback')} tracebacks")
        assert err.count("failed") > 1, text
        assert err.count(ASYNCPG_FLOOR) >= 1, text
        return
    assert "Traceback" not in text, text
    assert err.count(ASYNCPG_FLOOR) == 0, text
    assert err.count("failed") == 0 and err.count("connection lost") == 0, text
    print(f"\nstderr during a 3 s outage: {len(err.lines)} lines\n{text}")


def test_an_outage_ends_when_every_component_that_failed_has_succeeded(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Claims failing alone (e.g. too many connections for the claim session) stay reported
    while the heartbeat works; the outage is over when the claims succeed again."""
    caplog.set_level(logging.WARNING, logger="aioqueue.test")
    outage = Outage(logging.getLogger("aioqueue.test"))
    outage.failed("producer", ConnectionRefusedError("refused"))
    outage.failed("heartbeat", TimeoutError())
    outage.recovered("heartbeat")
    assert [r.getMessage() for r in caplog.records] == [
        "database unavailable (ConnectionRefusedError in the producer: refused); retrying until "
        "it answers again"
    ]
    outage.recovered("producer")
    assert caplog.records[-1].getMessage().startswith("database available again after ")
    outage.failed("completer", OSError())  # a stale connection right after: not a new outage
    assert len(caplog.records) == 2
