"""The workers table: a worker registers the kinds it handles when it starts, keeps its row live
on its heartbeat and deletes it when it stops, so `aioqueue status` can name the due kinds that
no live worker handles (RELIABILITY E1)."""

from __future__ import annotations

import functools
import json
import logging
import os
import re
import socket
from typing import Any

import anyio
import asyncpg
import pytest

import aioqueue
from aioqueue import config
from aioqueue._maintenance.pruner import Pruner
from tests.support.cli import aq
from tests.support.processes import until
from tests.support.roles import Roles, dsn_as, least_privilege_sql
from tests.support.worker_helpers import FAST, running_worker

pytestmark = pytest.mark.anyio


def _tasks(*kinds: str) -> aioqueue.Tasks:
    tasks = aioqueue.Tasks()
    for kind in kinds:

        @tasks.task(kind)
        async def handler(ctx: aioqueue.JobContext, payload: Any) -> str:
            return ctx.job.kind

    return tasks


async def _rows(conn: asyncpg.Connection, schema: str) -> list[asyncpg.Record]:
    return await conn.fetch(f'SELECT * FROM "{schema}".workers ORDER BY id')


async def status(dsn: str, q: aioqueue.Queue, *extra: str) -> Any:
    """`aioqueue status` as a user runs it (a subprocess), against this test's schema."""
    args = ("--dsn", dsn, "--schema", q.config.schema, "status", *extra)
    proc = await anyio.to_thread.run_sync(functools.partial(aq, *args))
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout) if "--json" in extra else proc.stdout


def _warnings(text: str) -> list[str]:
    """The warning lines of `aioqueue status` (a long one wraps onto the next lines)."""
    return [
        " ".join(w.split()) for w in re.findall(r"warning: (.*?)(?=\nwarning: |\Z)", text, re.S)
    ]


async def test_worker_registers_its_kinds_and_deregisters_on_stop(
    q: aioqueue.Queue, conn: asyncpg.Connection
) -> None:
    s = q.config.schema
    async with running_worker(q, _tasks("b.kind", "a.kind")) as (worker, _):
        (row,) = await _rows(conn, s)
        assert (row["id"], row["hostname"], row["pid"]) == (
            worker.id,
            socket.gethostname(),
            os.getpid(),
        )
        assert row["kinds"] == ["a.kind", "b.kind"]
        assert row["started_at"] <= row["last_seen_at"]
        (live,) = (await q.stats()).workers
        assert (live.id, live.kinds) == (worker.id, ["a.kind", "b.kind"])
        assert live.started_at == row["started_at"]
    assert await _rows(conn, s) == []  # graceful stop
    assert (await q.stats()).workers == []

    worker = aioqueue.Worker(q, _tasks("a.kind"), **FAST)
    started = anyio.Event()
    worker.hooks.subscribe(lambda e: e.type == "worker_started" and started.set())
    async with anyio.create_task_group() as tg:
        tg.start_soon(worker.run)
        await started.wait()
        assert len(await _rows(conn, s)) == 1
        tg.cancel_scope.cancel()  # a hard stop deletes the row too
    assert await _rows(conn, s) == []


async def test_heartbeat_keeps_the_row_live_and_registers_again_if_it_is_gone(
    q: aioqueue.Queue, conn: asyncpg.Connection
) -> None:
    s = q.config.schema
    async with running_worker(q, _tasks("a.kind"), heartbeat_interval=0.1) as (worker, _):
        (first,) = await _rows(conn, s)

        async def seen_again() -> bool:
            rows = await _rows(conn, s)
            return bool(rows) and rows[0]["last_seen_at"] > first["last_seen_at"]

        await until(seen_again, 10)  # no job runs: the heartbeat touches the row anyway
        await conn.execute(f'DELETE FROM "{s}".workers')  # e.g. pruned during a partition
        await until(seen_again, 10)
        (again,) = await _rows(conn, s)
        assert (again["id"], again["kinds"]) == (worker.id, ["a.kind"])
        assert again["started_at"] == first["started_at"]  # the first registration's time


async def test_a_transient_error_at_registration_does_not_stop_the_worker(
    q: aioqueue.Queue, conn: asyncpg.Connection, monkeypatch: pytest.MonkeyPatch
) -> None:
    real = q.queries.worker_register
    failures: list[str] = []

    async def fails_once(*args: Any, **kwargs: Any) -> Any:
        if not failures:
            failures.append("injected")
            raise ConnectionResetError("injected")
        return await real(*args, **kwargs)

    monkeypatch.setattr(q.queries, "worker_register", fails_once)
    out = await q.enqueue("a.kind")
    async with running_worker(q, _tasks("a.kind"), heartbeat_interval=0.1) as (_, rec):
        await rec.wait_for("completed", out.id)  # the worker runs jobs meanwhile
        await until(lambda: _rows(conn, q.config.schema), 10)  # registered by the heartbeat
    assert failures == ["injected"]


async def test_status_ignores_stale_workers_and_the_pruner_deletes_them(
    q: aioqueue.Queue, conn: asyncpg.Connection
) -> None:
    """A crashed worker leaves its row: not live after WORKER_LIVE_WINDOW, deleted by the pruner
    after WORKER_FORGET_AFTER."""
    s = q.config.schema
    live, forget = config.WORKER_LIVE_WINDOW, config.WORKER_FORGET_AFTER
    await conn.execute(
        f"""INSERT INTO "{s}".workers (id, hostname, pid, kinds, last_seen_at) VALUES
            ('crashed-recently', 'h', 1, '{{a.kind}}', now() - make_interval(secs => $1)),
            ('crashed-long-ago', 'h', 2, '{{a.kind}}', now() - make_interval(secs => $2))""",
        live + 1,
        forget + 1,
    )
    await q.enqueue("a.kind")
    stats = await q.stats()
    assert (stats.workers, stats.unhandled_kinds) == ([], {"a.kind": 1})
    pruner = Pruner(q.pool, q.queries, interval=60, retention={}, forget_workers_after=forget)
    assert await pruner.prune() == 0  # no finished job to prune
    assert [r["id"] for r in await _rows(conn, s)] == ["crashed-recently"]


async def test_unknown_kind_stays_pending_and_status_names_it(q: aioqueue.Queue, dsn: str) -> None:
    """RELIABILITY E1: a job of a kind no worker handles is never claimed, stays pending with
    attempts 0, `aioqueue status` lists it under "no registered handler", and a worker that has
    the handler runs it."""
    unknown = await q.enqueue("no.such.kind", {"n": 1})
    handled = await q.enqueue("handled.kind")
    later = await q.enqueue("later.kind", delay=3600)  # not due: nothing waits for it yet

    async with running_worker(q, _tasks("handled.kind")) as (worker, rec):
        await rec.wait_for("completed", handled.id)  # the worker has claimed: not the unknown
        text = await status(dsn, q)
        data = await status(dsn, q, "--json")
    job = await q.get_job(unknown.id)
    assert (job.state, job.attempts, job.locked_by) == (aioqueue.JobState.PENDING, 0, None)

    (warning,) = [w for w in _warnings(text) if "no registered handler" in w]
    assert "no.such.kind (1 due)" in warning
    assert "handled.kind" not in warning and "later.kind" not in warning
    assert "live workers: 1 on 1 host, handling 1 kind" in text
    assert data["unhandled_kinds"] == {"no.such.kind": 1}
    assert [(w["id"], w["kinds"]) for w in data["workers"]] == [(worker.id, ["handled.kind"])]
    assert any("no registered handler" in w for w in data["warnings"])

    # no worker is live: status says that instead of listing every kind
    text = await status(dsn, q)
    (warning,) = [w for w in _warnings(text) if "no registered handler" in w]
    assert warning.startswith("no live worker")
    assert "1 due job waits" in warning and "no.such.kind" not in warning
    assert (await status(dsn, q, "--json"))["workers"] == []

    async with running_worker(q, _tasks("no.such.kind")) as (_, rec):
        await rec.wait_for("completed", unknown.id)
    job = await q.get_job(unknown.id)
    assert (job.state, job.attempts, job.result) == (
        aioqueue.JobState.COMPLETED,
        1,
        "no.such.kind",
    )
    assert (await q.get_job(later.id)).state is aioqueue.JobState.SCHEDULED
    data = await status(dsn, q, "--json")
    assert data["unhandled_kinds"] == {}
    assert not any("no registered handler" in w for w in data["warnings"])


async def test_a_worker_role_without_rights_on_the_table_runs_unregistered(
    q: aioqueue.Queue, conn: asyncpg.Connection, dsn: str, caplog: pytest.LogCaptureFixture
) -> None:
    """Grants made before the workers table existed (examples/sql_least_privilege.sql without
    its workers lines): the worker says once how to fix it and runs its jobs anyway."""
    s = q.config.schema
    roles = Roles(conn)
    try:
        worker_role = await roles.create("aq_worker")
        producer, lowpriv = await roles.create("aq_producer"), await roles.create("app_lowpriv")
        sql = least_privilege_sql(s, worker_role, producer, lowpriv)
        old = "\n".join(line for line in sql.splitlines() if ".workers" not in line)
        assert old != sql
        await conn.execute(old)
        out = await q.enqueue("a.kind")
        wq = await aioqueue.Queue.connect(
            dsn_as(dsn, worker_role, roles.password), schema=s, migrate=False
        )
        try:
            with caplog.at_level(logging.ERROR, logger="aioqueue.worker"):
                async with running_worker(wq, _tasks("a.kind"), heartbeat_interval=0.1) as (
                    _,
                    rec,
                ):
                    await rec.wait_for("completed", out.id)
        finally:
            await wq.close()
    finally:
        await roles.drop_all()
    denied = [r.getMessage() for r in caplog.records if "workers table" in r.getMessage()]
    assert len(denied) == 1 and "sql_least_privilege.sql" in denied[0], denied
    assert await _rows(conn, s) == []
