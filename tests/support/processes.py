"""Real CLI workers as subprocesses (``python -m aioqueue worker``, short lease and intervals)
and what tests read from the database while they run: the chaos ledger that
``tests.support.chaos_tasks`` writes, job counts, and ``until`` to wait on either."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from typing import Any

import anyio
import asyncpg

import aioqueue
from tests.conftest import ROOT

SHORT = ["--lease", "2", "--heartbeat", "0.5", "--rescue-interval", "0.5", "--poll-interval", "0.5"]


async def start_worker(
    dsn: str,
    schema: str,
    *extra: str,
    stderr: Any = None,
    tasks: str = "tests.support.chaos_tasks:tasks",
    env: dict[str, str] | None = None,
) -> asyncio.subprocess.Process:
    """The real CLI worker (short lease and intervals; ``extra`` options override them)."""
    return await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "aioqueue",
        "--dsn",
        dsn,
        "--schema",
        schema,
        "worker",
        tasks,
        *SHORT,
        *extra,
        cwd=ROOT,
        stderr=stderr,
        env={
            **(os.environ if env is None else env),
            "CHAOS_DSN": dsn,
            "CHAOS_SCHEMA": schema,
            "PYTHONPATH": str(ROOT),
        },
    )


async def stop(proc: asyncio.subprocess.Process, timeout: float = 15) -> int:
    proc.send_signal(signal.SIGTERM)
    return await asyncio.wait_for(proc.wait(), timeout)


async def ledger(q: aioqueue.Queue, outcome: str) -> list[asyncpg.Record]:
    return await q.pool.fetch(
        f'SELECT * FROM "{q.config.schema}".chaos_ledger WHERE outcome = $1 ORDER BY at', outcome
    )


async def until(predicate: Any, timeout: float) -> None:
    """Watch a subprocess's effects in the database until ``predicate()`` holds."""
    with anyio.fail_after(timeout):
        while not await predicate():  # noqa: ASYNC110 - a subprocess: only the DB shows it
            await anyio.sleep(0.05)


async def check_invariants(q: aioqueue.Queue, ids: list[int]) -> None:
    s = q.config.schema
    rows = await q.pool.fetch(
        f'SELECT id, state::text, attempts, max_attempts FROM "{s}".jobs WHERE id = ANY($1)', ids
    )
    assert {r["state"] for r in rows} == {"completed"}, "I1: every job finished"
    assert all(r["attempts"] <= r["max_attempts"] for r in rows), "I4"
    zombies = await q.pool.fetchval(
        f"SELECT count(*) FROM \"{s}\".jobs WHERE state = 'running' AND lease_expires_at < now()"
    )
    assert zombies == 0, "I3"


async def count(q: aioqueue.Queue, outcome: str, n: int) -> bool:
    return len(await ledger(q, outcome)) >= n


async def completed(q: aioqueue.Queue, n: int) -> bool:
    try:
        done = await q.pool.fetchval(
            f"SELECT count(*) FROM \"{q.config.schema}\".jobs WHERE state = 'completed'"
        )
    except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError):
        return False  # the server is still coming back
    return int(done) >= n
