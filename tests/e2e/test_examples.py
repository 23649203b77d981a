"""Every program in examples/ runs for real against the test database, each in its own schema:
web apps over real HTTP (uvicorn on 127.0.0.1, httpx), scripts and the CLI worker as the
subprocesses a user would start (AIOQUEUE_DSN / AIOQUEUE_SCHEMA in their environment)."""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import hashlib
import hmac
import importlib.util
import json
import os
import re
import secrets
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path
from types import ModuleType
from typing import Any

import anyio
import asyncpg
import httpx
import pytest
import uvicorn

import aioqueue
from aioqueue import JobState

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "examples"


# -- helpers --------------------------------------------------------------------------------------


def example_env(dsn: str, schema: str, **extra: str) -> dict[str, str]:
    return {
        **os.environ,
        "AIOQUEUE_DSN": dsn,
        "AIOQUEUE_SCHEMA": schema,
        "PYTHONUNBUFFERED": "1",
        **extra,
    }


async def run_example(script: str, dsn: str, schema: str, *args: str, timeout: float = 30) -> str:
    """`python examples/<script> args...` as a user runs it; returns its stdout."""
    with anyio.fail_after(timeout):
        proc = await anyio.run_process(
            [sys.executable, str(EXAMPLES / script), *args],
            env=example_env(dsn, schema),
            cwd=ROOT,
            check=False,
        )
    out, err = proc.stdout.decode(), proc.stderr.decode()
    assert proc.returncode == 0, f"{script} exited {proc.returncode}\n{out}\n{err}"
    return out


def load_example(name: str) -> ModuleType:
    """A fresh import of examples/<name>.py (module-level settings read the environment now)."""
    spec = importlib.util.spec_from_file_location(f"example_{name}", EXAMPLES / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # SQLAlchemy and FastAPI resolve annotations through it
    spec.loader.exec_module(module)
    return module


@contextlib.asynccontextmanager
async def serve_in_process(app: Any) -> AsyncIterator[str]:
    """Run an ASGI app (lifespan included) with uvicorn on 127.0.0.1, port 0, in this loop."""
    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=0, log_level="warning", lifespan="on")
    )
    task = asyncio.create_task(server.serve())
    try:
        with anyio.fail_after(20):
            while not server.started:  # a readiness poll: startup runs the app's lifespan
                if task.done():
                    task.result()  # startup failed: raise its error
                    pytest.fail("uvicorn exited during startup")
                await asyncio.sleep(0.01)
        port = server.servers[0].sockets[0].getsockname()[1]
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        with anyio.fail_after(20):
            await task


class ServerProcess:
    """A web example started as `python examples/<script>` with PORT=0; the URL is read from
    uvicorn's "Uvicorn running on ..." line, logged once the app's lifespan has started."""

    def __init__(self, proc: asyncio.subprocess.Process) -> None:
        self.proc = proc
        self.lines: list[str] = []
        self.url: str | None = None
        self.ready = asyncio.Event()

    async def pump(self) -> None:
        assert self.proc.stdout is not None
        while line := await self.proc.stdout.readline():
            text = line.decode(errors="replace").rstrip()
            self.lines.append(text)
            match = re.search(r"Uvicorn running on (http://\S+)", text)
            if match:
                self.url = match.group(1)
                self.ready.set()
        self.ready.set()  # EOF: the process is gone

    @property
    def output(self) -> str:
        return "\n".join(self.lines)


@contextlib.asynccontextmanager
async def serve_subprocess(script: str, env: dict[str, str]) -> AsyncIterator[ServerProcess]:
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        str(EXAMPLES / script),
        env={**env, "PORT": "0"},
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    server = ServerProcess(proc)
    pump = asyncio.create_task(server.pump())
    try:
        with anyio.fail_after(30):
            await server.ready.wait()
        assert server.url is not None, f"{script} did not start:\n{server.output}"
        yield server
    finally:
        if proc.returncode is None:
            proc.send_signal(signal.SIGINT)  # Ctrl-C: uvicorn's graceful shutdown
            try:
                with anyio.fail_after(20):
                    await proc.wait()
            finally:
                if proc.returncode is None:
                    proc.kill()
                    await proc.wait()
        with anyio.fail_after(5):
            await pump


# -- fastapi_app.py -------------------------------------------------------------------------------


@pytest.fixture
async def users_table(conn: asyncpg.Connection) -> AsyncIterator[None]:
    """fastapi_app.py creates public.users at startup: drop it after the test."""
    yield
    await conn.execute("DROP TABLE IF EXISTS users")


@pytest.mark.usefixtures("users_table")
async def test_fastapi_signup_enqueues_in_the_request_transaction(
    dsn: str,
    schema: str,
    q: aioqueue.Queue,
    conn: asyncpg.Connection,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("AIOQUEUE_DSN", dsn)
    monkeypatch.setenv("AIOQUEUE_SCHEMA", schema)
    module = load_example("fastapi_app")
    ok, declined = f"ada.{schema}@example.com", f"bob.{schema}@example.com"

    async def welcome_emails() -> list[str]:
        return [j.payload["email"] for j in await q.list_jobs(kind="send.welcome")]

    async with (
        serve_in_process(module.app) as url,
        httpx.AsyncClient(base_url=url, timeout=10) as http,
    ):
        # commit path: the user row and the job, and the app's own worker runs the job
        r = await http.post("/signup", json={"email": ok})
        assert r.status_code == 201, r.text
        user_id, job_id = r.json()["user_id"], r.json()["job_id"]
        job = await q.wait(job_id, timeout=10)
        assert job.state is JobState.COMPLETED
        assert job.result == {"sent_to": ok}
        assert job.payload == {"user_id": user_id, "email": ok}
        row = await conn.fetchrow("SELECT email, welcomed_at FROM users WHERE id = $1", user_id)
        assert row is not None and row["email"] == ok
        assert row["welcomed_at"] is not None  # written by the handler
        r = await http.get(f"/jobs/{job_id}")
        assert r.status_code == 200
        assert r.json()["state"] == "completed" and r.json()["result"] == {"sent_to": ok}

        # failure after the enqueue: neither the row nor the job exists
        r = await http.post("/signup", params={"fail": "1"}, json={"email": declined})
        assert r.status_code == 402, r.text
        assert await conn.fetchval("SELECT count(*) FROM users WHERE email = $1", declined) == 0
        assert await welcome_emails() == [ok]

        # duplicate email: 409, still one user and one job
        r = await http.post("/signup", json={"email": ok})
        assert r.status_code == 409, r.text
        assert await conn.fetchval("SELECT count(*) FROM users WHERE email = $1", ok) == 1
        assert await welcome_emails() == [ok]

        r = await http.get(f"/jobs/{job_id + 1000}")
        assert r.status_code == 404
    # the lifespan stopped the worker cleanly: nothing left running or waiting
    totals = (await q.stats()).totals
    assert totals == {state.value: 1 if state is JobState.COMPLETED else 0 for state in JobState}


# -- webhook.py -----------------------------------------------------------------------------------


def stripe_signed(body: bytes, secret: str, *, age: float = 0) -> dict[str, str]:
    t = str(int(time.time() - age))
    v1 = hmac.new(secret.encode(), f"{t}.".encode() + body, hashlib.sha256).hexdigest()
    return {"stripe-signature": f"t={t},v1={v1}", "content-type": "application/json"}


async def test_webhook_dedupes_redeliveries(dsn: str, schema: str, q: aioqueue.Queue) -> None:
    secret = "whsec_" + secrets.token_hex(8)
    env = example_env(dsn, schema, STRIPE_WEBHOOK_SECRET=secret)
    event = {
        "id": "evt_" + secrets.token_hex(6),
        "type": "invoice.paid",
        "created": int(time.time()),
        "data": {"object": {"id": "in_1", "amount_paid": 4200}},
    }
    body = json.dumps(event).encode()
    async with (
        serve_subprocess("webhook.py", env) as server,
        httpx.AsyncClient(base_url=server.url or "", timeout=10) as http,
    ):

        async def deliver(payload: bytes, headers: dict[str, str]) -> httpx.Response:
            return await http.post("/webhooks/stripe", content=payload, headers=headers)

        first = await deliver(body, stripe_signed(body, secret))
        assert first.status_code == 200, first.text
        assert first.json()["deduped"] is False
        job_id = first.json()["job_id"]
        # a redelivery while the job waits, runs (or failed): the same job; only if the worker
        # completed it already does the redelivery make a new job (unsafe_dedupe's rule)
        again = await deliver(body, stripe_signed(body, secret))
        if again.json()["deduped"]:
            assert again.json()["job_id"] == job_id
        else:
            assert (await q.get_job(job_id)).state is JobState.COMPLETED
            await q.wait(again.json()["job_id"], timeout=10)

        job = await q.wait(job_id, timeout=10)  # run by the worker in the app's lifespan
        assert job.state is JobState.COMPLETED
        assert job.result == {"handled": "invoice.paid", "invoice": "in_1"}
        assert job.unique_key == event["id"]
        # redelivered after the job completed: a completed job does not count for
        # unsafe_dedupe (graphile-worker's rule), so it runs again, idempotently
        late = await deliver(body, stripe_signed(body, secret))
        assert late.json()["deduped"] is False
        assert late.json()["job_id"] not in (job_id, again.json()["job_id"])
        rerun = await q.wait(late.json()["job_id"], timeout=10)
        assert rerun.result == job.result
        # ... and a redelivery while that one has failed for good is still deduped onto it
        await q.pool.execute(
            f"""UPDATE "{schema}".jobs SET state = 'failed' WHERE id = $1""", rerun.id
        )
        failed = await deliver(body, stripe_signed(body, secret))
        assert failed.json() == {"job_id": rerun.id, "deduped": True}

        # a forged or stale signature, or a body that is not an event: 400, nothing enqueued
        forged = await deliver(body, stripe_signed(body, "whsec_wrong"))
        assert forged.status_code == 400
        other = json.dumps({**event, "id": "evt_other"}).encode()
        assert (await deliver(other, stripe_signed(other, secret, age=3600))).status_code == 400
        junk = b'{"id": "evt_x"}'
        assert (await deliver(junk, stripe_signed(junk, secret))).status_code == 400

        # another event type: a new job, handled as "ignored"
        other = json.dumps({**event, "id": "evt_other", "type": "charge.refunded"}).encode()
        response = await deliver(other, stripe_signed(other, secret))
        assert response.json()["deduped"] is False
        job = await q.wait(response.json()["job_id"], timeout=10)
        assert job.result == {"ignored": "charge.refunded"}
    # Ctrl-C stopped uvicorn and, in the lifespan, the worker: cleanly
    assert server.proc.returncode == 0, server.output
    assert "Finished server process" in server.output
    keys = [j.unique_key for j in await q.list_jobs()]
    assert keys[0] == "evt_other" and keys[1:] == [event["id"]] * (len(keys) - 1)
    assert len(keys) == (3 if again.json()["deduped"] else 4)


# -- batch_digest.py ------------------------------------------------------------------------------


async def test_batch_digest_one_job_per_user_with_the_events_appended(
    dsn: str, schema: str, q: aioqueue.Queue
) -> None:
    out = await run_example("batch_digest.py", dsn, schema)
    assert out.splitlines() == [
        "5 events -> 2 digest jobs",
        "digest:user:7: 1 new comment, 1 new follow, 2 new likes",
        "digest:user:8: 1 new follow",
    ]
    jobs = {j.unique_key: j for j in await q.list_jobs(kind="notify.digest")}
    assert set(jobs) == {"digest:user:7", "digest:user:8"}
    seven = jobs["digest:user:7"]
    assert seven.state is JobState.COMPLETED and seven.attempts == 1
    # the handler got the events in arrival order, appended to one payload list
    assert [(a["type"], a["actor"]) for a in seven.payload] == [
        ("like", "ana"),
        ("comment", "ben"),
        ("like", "carl"),
        ("follow", "dan"),
    ]
    assert seven.result == {
        "user": "digest:user:7",
        "events": 4,
        "text": "1 new comment, 1 new follow, 2 new likes",
    }


async def test_batch_digest_max_delay_caps_the_debounce(q: aioqueue.Queue) -> None:
    digest = load_example("batch_digest")
    # a debounce far longer than the ceiling: each event would push the digest an hour away
    for actor in ("ana", "ben", "carl"):
        out = await digest.record_activity(
            q, 1, digest.Activity("like", actor), delay=3600, max_delay=1
        )
    job = await q.get_job(out.id)
    assert [a["actor"] for a in job.payload] == ["ana", "ben", "carl"]
    assert job.run_at <= job.created_at + dt.timedelta(seconds=1)  # capped by max_delay
    completed: list[int | None] = []

    def on_event(event: aioqueue.Event) -> None:
        if event.type == "completed":
            completed.append(event.job_id)

    worker = aioqueue.Worker(q, digest.tasks, hooks=[on_event])
    running = asyncio.create_task(worker.run())
    try:
        done = await q.wait(out.id, timeout=15)
    finally:
        await worker.stop()
        await running
    assert done.result["events"] == 3
    assert completed == [out.id]  # one job, run once


# -- cron_report.py -------------------------------------------------------------------------------


async def test_cron_report_runs_each_slot_once(dsn: str, schema: str, q: aioqueue.Queue) -> None:
    out = await run_example("cron_report.py", dsn, schema, "--runs", "2")
    lines = out.splitlines()
    assert lines[0] == "worker running 2 crons (Ctrl-C to stop)"
    assert [line.split(" (")[0] for line in lines[1:3]] == ["snapshot 1 done", "snapshot 2 done"]
    assert lines[-1] == "worker stopped"
    snapshots = sorted(await q.list_jobs(kind="metrics.snapshot"), key=lambda j: j.run_at)
    assert len(snapshots) >= 2
    first, second = snapshots[:2]
    assert first.state is second.state is JobState.COMPLETED
    # one job per one-second slot, each occurrence linked to the previous one
    assert second.run_at - first.run_at == dt.timedelta(seconds=1)
    assert second.rescheduled_from == first.id
    assert set(first.result) == {"waiting", "completed"}


async def test_cron_report_daily_handler_reports_the_day_before_its_slot(
    q: aioqueue.Queue,
) -> None:
    from aioqueue.testing import run_job

    cron = load_example("cron_report")
    (daily,) = [c for c in cron.tasks.crons if c.kind == "report.daily"]
    assert (daily.expr, daily.timezone) == ("0 7 * * *", "Europe/Paris")
    result = await run_job(cron.tasks, "report.daily", daily.payload, state={"queue": q})
    yesterday = dt.datetime.now(cron.PARIS).date() - dt.timedelta(days=1)
    assert result == {"report": "signups", "day": yesterday.isoformat()}


# -- trigger.sql + trigger.py ---------------------------------------------------------------------


@pytest.fixture
async def orders_table(conn: asyncpg.Connection) -> AsyncIterator[None]:
    """trigger.sql creates public.orders and its trigger: drop them after the test."""
    yield
    await conn.execute(
        "DROP TABLE IF EXISTS orders; DROP FUNCTION IF EXISTS orders_enqueue_confirmation()"
    )


@pytest.mark.usefixtures("orders_table")
async def test_trigger_enqueues_on_insert_and_the_worker_runs_it(
    dsn: str, schema: str, q: aioqueue.Queue, conn: asyncpg.Connection
) -> None:
    out = await run_example("trigger.py", dsn, schema)
    lines = out.splitlines()
    assert lines[0] == "inserted orders [1, 2]: the trigger enqueued their jobs"
    assert lines[1].endswith(": confirmed order 1 (42.00 EUR) to ana@example.com")
    assert lines[2].endswith(": confirmed order 2 (19.99 EUR) to ben@example.com")
    assert lines[3] == "rolled-back orders: 0, their jobs: 0"

    # the jobs are in this test's schema, written by the trigger, completed by the worker
    jobs = sorted(await q.list_jobs(kind="order.confirm"), key=lambda j: j.id)
    assert [(j.unique_key, j.state, j.max_attempts) for j in jobs] == [
        ("order:1", JobState.COMPLETED, 10),
        ("order:2", JobState.COMPLETED, 10),
    ]
    assert jobs[0].payload == {"order_id": 1, "email": "ana@example.com", "total_cents": 4200}
    rows = await conn.fetch("SELECT id, confirmed_at IS NOT NULL AS ok FROM orders ORDER BY id")
    assert [tuple(r) for r in rows] == [(1, True), (2, True)]

    # the trigger keeps working for any client: an insert from this test's connection
    order_id = await conn.fetchval(
        "INSERT INTO orders (email, total_cents) VALUES ('zoe@example.com', 5) RETURNING id"
    )
    # (id 3 went to the rolled-back order: used up, never committed, and no job for it)
    assert order_id == 4
    (job,) = [j for j in await q.list_jobs(kind="order.confirm") if j.unique_key == "order:4"]
    assert (job.payload["email"], job.state) == ("zoe@example.com", JobState.PENDING)


def test_trigger_sql_takes_only_a_valid_schema_name() -> None:
    trigger = load_example("trigger")
    assert '"t_abc".add_job(' in trigger.trigger_sql("t_abc")
    for bad in ('x".add_job(1); DROP TABLE orders; --', "Upper", "pg_catalog", ""):
        with pytest.raises(aioqueue.ConfigurationError):
            trigger.trigger_sql(bad)


# -- typed_payloads.py ----------------------------------------------------------------------------


async def test_typed_payloads_validate_and_fail_bad_ones_for_good(
    dsn: str, schema: str, q: aioqueue.Queue
) -> None:
    out = await run_example("typed_payloads.py", dsn, schema)
    assert out.splitlines() == [
        "image.thumbnail completed after 1 attempt(s): "
        "{'url': 'https://cdn.example.com/1/320.webp', 'width': 320}",
        "notify.send completed after 1 attempt(s): email to ana@example.com: Hi",
        "notify.send completed after 1 attempt(s): sms to +33600000000",
        "image.thumbnail completed after 1 attempt(s): "
        "{'url': 'https://cdn.example.com/2/64.png', 'width': 64}",
        "image.thumbnail failed after 1 attempt(s): Expected `int`, got `str` - at `$.image_id`",
        "image.thumbnail failed after 1 attempt(s): Expected `int` >= 1 - at `$.width`",
        "image.thumbnail failed after 1 attempt(s): Object contains unknown field `colour`",
        "notify.send failed after 1 attempt(s): Invalid value - at `$.type`",
    ]
    failed = await q.list_jobs(state="failed")
    assert len(failed) == 4
    for job in failed:
        # permanent at the first attempt, although the task allows more
        assert job.attempts == 1
        assert job.error is not None and job.error.type == "ValidationError", job.error
    # a Struct payload is stored as plain JSON (tag included)
    (sms,) = [j for j in await q.list_jobs(kind="notify.send") if j.payload.get("type") == "sms"]
    assert sms.payload == {"type": "sms", "phone": "+33600000000", "text": "Hi"}


# -- standalone_worker.py -------------------------------------------------------------------------


async def listeners(conn: asyncpg.Connection) -> int:
    """How many workers listen for notifications on this database (one connection each)."""
    count: int = await conn.fetchval(
        "SELECT count(*) FROM pg_stat_activity "
        "WHERE datname = current_database() AND application_name LIKE 'aioqueue-listener:%'"
    )
    return count


async def test_standalone_worker_cli_with_two_processes(
    dsn: str, schema: str, q: aioqueue.Queue, conn: asyncpg.Connection
) -> None:
    cli = Path(sys.executable).with_name("aioqueue")
    command = [str(cli)] if cli.exists() else [sys.executable, "-m", "aioqueue"]
    worker = await asyncio.create_subprocess_exec(
        *command,
        "--schema",
        schema,
        "worker",
        "examples.standalone_worker:tasks",
        "--processes",
        "2",
        env=example_env(dsn, schema),
        cwd=ROOT,  # the CLI imports examples.standalone_worker from the current directory
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    try:
        # ready once both worker processes listen (their signal handlers are installed by then)
        with anyio.fail_after(30):
            while await listeners(conn) < 2:
                assert worker.returncode is None, await worker.communicate()
                await asyncio.sleep(0.05)

        out = await run_example("standalone_worker.py", dsn, schema, "120")
        assert out.startswith("enqueued 123 jobs")  # 120 images + one email per 50
        jobs = await q.list_jobs(limit=1000)
        assert len(jobs) == 123
        results = [await q.wait(j.id, timeout=30) for j in jobs]
        assert {r.state for r in results} == {JobState.COMPLETED}
        # run by the CLI's worker processes (not by the supervisor, which only forwards signals)
        pids = {r.result["pid"] for r in results}
        assert 1 <= len(pids) <= 2 and worker.pid not in pids and os.getpid() not in pids
        emails = [r for r in results if r.kind == "email.send"]
        assert sorted(r.payload["subject"] for r in emails) == [
            "images 0-49",
            "images 100-119",
            "images 50-99",
        ]
    finally:
        if worker.returncode is None:
            worker.send_signal(signal.SIGTERM)  # graceful: forwarded to both processes
        with anyio.fail_after(30):
            _, stderr = await worker.communicate()
    assert worker.returncode == 0, stderr.decode()
    assert stderr.decode().count("received SIGTERM: stopping gracefully") == 2


# -- examples/README.md ---------------------------------------------------------------------------


EXAMPLE_FILES = [
    "fastapi_app.py",
    "webhook.py",
    "batch_digest.py",
    "cron_report.py",
    "trigger.sql",
    "trigger.py",
    "typed_payloads.py",
    "standalone_worker.py",
]


@pytest.mark.parametrize("name", EXAMPLE_FILES)
def test_example_is_listed_in_the_examples_readme_and_run_here(name: str) -> None:
    assert (EXAMPLES / name).exists()
    assert f"]({name})" in (EXAMPLES / "README.md").read_text()
    assert f'"{Path(name).stem}' in Path(__file__).read_text()


# -- video_pipeline.py ----------------------------------------------------------------------------


async def test_video_pipeline_runs_the_graph_and_cancels_after_a_failed_download(
    dsn: str, schema: str, q: aioqueue.Queue
) -> None:
    out = await run_example("video_pipeline.py", dsn, schema, timeout=60)
    lines = out.splitlines()
    assert lines[0] == "download completed: progress 1.0 (chunk 4 of 4)"
    assert lines[1] == "video 1: 3 renditions ready, 0 cancelled (request r-1)"
    assert lines[2] == "video 2: 0 renditions ready, 3 cancelled (request r-2)"
    assert [line.split(":")[0] for line in lines[3:]] == [
        "transcode 1080p completed",
        "transcode 720p completed",
        "transcode 360p completed",
        "transcode 1080p cancelled",
        "transcode 720p cancelled",
        "transcode 360p cancelled",
    ]
    assert "parent job" in lines[-1] and "failed" in lines[-1]
    callbacks = await q.list_jobs(kind="video.publish")
    assert len(callbacks) == 2  # one per group, exactly once each
