"""Security and clock scenarios (RELIABILITY plan S3-S6, A8): least-privilege roles running a
real worker, secrets kept out of logs, errors and CLI output, what a stranger listening on the
notification channel learns, 100,000 queue names against claims, and workers whose clock is two
hours off (libfaketime) taking every time from the database."""

from __future__ import annotations

import asyncio
import functools
import json
import logging
import os
import re
import secrets
import signal
import subprocess
import sys
import traceback
import urllib.parse
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import anyio
import asyncpg
import msgspec
import pytest

import aioqueue
from aioqueue._db.migrate import migrate
from aioqueue._maintenance.pruner import Pruner
from aioqueue.config import channel_for
from tests.support.cli import aq
from tests.support.notifications import Listener
from tests.support.plans import BATCH, assert_no_seq_scan_on_jobs, plan_nodes, rows_read
from tests.support.processes import start_worker, until
from tests.support.roles import Roles, dsn_as, least_privilege_sql, wrapper_sql
from tests.support.worker_helpers import running_worker

pytestmark = pytest.mark.anyio
LIBFAKETIME = Path("/usr/lib/x86_64-linux-gnu/faketime/libfaketime.so.1")


def dsn_wrong_port(dsn: str) -> str:
    """``dsn`` pointing at port 1, where no server listens (TCP or unix socket)."""
    parts = urllib.parse.urlsplit(dsn)
    query = urllib.parse.parse_qsl(parts.query)
    if any(key == "port" for key, _ in query):
        moved = [(key, "1" if key == "port" else value) for key, value in query]
        return urllib.parse.urlunsplit(
            parts._replace(query=urllib.parse.urlencode(moved, safe="/"))
        )
    return urllib.parse.urlunsplit(parts._replace(netloc=parts.netloc.rpartition(":")[0] + ":1"))


# -- S3 least privilege -----------------------------------------------------------------------


class LeastPrivilege(msgspec.Struct, frozen=True):
    schema: str
    wrap: str  # the schema of the SECURITY DEFINER wrapper
    worker: str
    producer: str
    lowpriv: str
    password: str
    dsn: str

    def dsn_of(self, role: str) -> str:
        return dsn_as(self.dsn, role, self.password)

    async def connect(self, role: str) -> asyncpg.Connection:
        return await asyncpg.connect(self.dsn_of(role))


@pytest.fixture
async def lp(
    q: aioqueue.Queue, conn: asyncpg.Connection, dsn: str
) -> AsyncIterator[LeastPrivilege]:
    """The three roles (unique names: roles are cluster-wide), the documented wrapper for the
    producer and the documented grants, all applied by the owner; dropped at the end."""
    roles = Roles(conn)
    wrap = f"app_jobs_{secrets.token_hex(4)}"
    try:
        worker = await roles.create("aq_worker")
        producer = await roles.create("aq_producer")
        lowpriv = await roles.create("app_lowpriv")
        s = q.config.schema
        await conn.execute(wrapper_sql(s, wrap, producer))
        await conn.execute(least_privilege_sql(s, worker, producer, lowpriv))
        yield LeastPrivilege(s, wrap, worker, producer, lowpriv, roles.password, dsn)
    finally:
        await conn.execute(f"DROP SCHEMA IF EXISTS {wrap} CASCADE")
        await roles.drop_all()


async def test_least_privilege_worker_runs_every_service(
    lp: LeastPrivilege,
    q: aioqueue.Queue,
    conn: asyncpg.Connection,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """aq_worker runs a real Worker: claims, heartbeats past its lease, completions, retries,
    permanent failures, follow-up enqueues from a handler, rescue of an expired lease, pruning
    and cron slots; jobs come in through the producer's wrapper."""
    caplog.set_level(logging.INFO, logger="aioqueue")
    s = lp.schema
    tasks = aioqueue.Tasks()
    flaky_runs: list[int] = []

    @tasks.task("public.ok")
    async def ok(ctx: aioqueue.JobContext, payload: Any) -> Any:
        return {"echo": payload}

    @tasks.task("public.flaky", retry_delay=0)
    async def flaky(ctx: aioqueue.JobContext, payload: Any) -> str:
        flaky_runs.append(ctx.job.attempts)
        if ctx.job.attempts == 1:
            raise RuntimeError("first attempt fails")
        return "second attempt"

    @tasks.task("public.doomed", max_attempts=1)
    async def doomed(ctx: aioqueue.JobContext, payload: Any) -> None:
        raise RuntimeError("always fails")

    @tasks.task("public.long")
    async def long(ctx: aioqueue.JobContext, payload: Any) -> str:
        await anyio.sleep(2.5)  # 2.5x the lease: only heartbeats keep it
        return "kept"

    @tasks.task("public.parent")
    async def parent(ctx: aioqueue.JobContext, payload: Any) -> int:
        child = await ctx.state.enqueue("public.ok", {"from": ctx.job.id})  # as aq_worker
        return child.id

    @tasks.task("public.tick")
    async def tick(ctx: aioqueue.JobContext, payload: Any) -> None:
        return None

    tasks.cron("* * * * * *", "public.tick", name="every-second")  # seconds field last

    producer = await lp.connect(lp.producer)
    try:

        async def enqueue(kind: str, run_at: str = "NULL") -> int:
            return int(
                await producer.fetchval(
                    f"SELECT {lp.wrap}.app_enqueue($1, '{{\"x\": 1}}', run_at := {run_at})", kind
                )
            )

        ids = {k: await enqueue(k) for k in ("public.ok", "public.flaky", "public.doomed")}
        ids["public.long"] = await enqueue("public.long")
        ids["public.parent"] = await enqueue("public.parent")
        lost = await enqueue("public.ok", "now() + interval '1 hour'")
    finally:
        await producer.close()
    # set up by the owner: a dead worker's job (lease expired), a job past its retention
    await conn.execute(
        f"""UPDATE "{s}".jobs SET state = 'running', attempts = 1, lease_token = 1,
                   locked_by = 'dead-worker', started_at = now() - interval '1 minute',
                   lease_expires_at = now() - interval '1 second' WHERE id = $1""",
        lost,
    )
    old = await conn.fetchval(
        f"""INSERT INTO "{s}".jobs (kind, state, attempts, max_attempts, finished_at)
            VALUES ('public.ok', 'completed', 1, 25, now() - interval '2 days') RETURNING id"""
    )

    wq = await aioqueue.Queue.connect(lp.dsn_of(lp.worker), schema=s, migrate=False)
    try:
        async with running_worker(
            wq,
            tasks,
            state=wq,
            lease=1.0,
            heartbeat_interval=0.2,
            retention=3600,
            prune_interval=0.2,
        ) as (w, rec):
            registered = await conn.fetchrow(f'SELECT id, kinds FROM "{s}".workers')
            assert registered is not None and tuple(registered) == (w.id, tasks.kinds)
            await rec.wait_for("completed", ids["public.long"])
            await rec.wait_for("completed", ids["public.flaky"])
            await rec.wait_for("failed", ids["public.doomed"])
            await rec.wait_for("rescued", lost)
            await rec.wait_for("completed", lost, timeout=15)  # after exp(1) s of backoff
            child = (await rec.wait_for("completed", ids["public.parent"]))[0]
            assert child.job_id is not None
            await rec.wait(lambda r: sum(e.kind == "public.tick" for e in r.of("completed")) >= 2)

            async def pruned() -> bool:
                return bool(
                    await conn.fetchval(f'SELECT count(*) = 0 FROM "{s}".jobs WHERE id = $1', old)
                )

            await until(pruned, 10)
    finally:
        await wq.close()

    assert not rec.of("lease_lost") and not rec.of("completion_rejected")
    assert await conn.fetchval(f'SELECT count(*) FROM "{s}".workers') == 0  # deregistered
    long_job = await q.get_job(ids["public.long"])
    assert (long_job.state, long_job.attempts, long_job.result) == (
        aioqueue.JobState.COMPLETED,
        1,
        "kept",
    )
    assert flaky_runs == [1, 2]
    assert (await q.get_job(ids["public.doomed"])).state is aioqueue.JobState.FAILED
    rescued = await q.get_job(lost)
    assert (rescued.state, rescued.attempts) == (aioqueue.JobState.COMPLETED, 2)
    children = await q.list_jobs(kind="public.ok", limit=10)
    assert any(j.payload == {"from": ids["public.parent"]} for j in children)
    assert await conn.fetchval(f'SELECT count(*) FROM "{s}".crons') == 1
    denied = [
        r.getMessage()
        for r in caplog.records
        if "Privilege" in r.getMessage() or "permission denied" in r.getMessage()
    ]
    assert denied == []


async def test_least_privilege_worker_cannot_run_ddl(lp: LeastPrivilege) -> None:
    s = lp.schema
    w = await lp.connect(lp.worker)
    try:
        for sql in (
            f'DROP TABLE "{s}".jobs',
            f'ALTER TABLE "{s}".jobs ADD COLUMN x integer',
            f'ALTER TABLE "{s}".jobs DISABLE ROW LEVEL SECURITY',
            f'ALTER TABLE "{s}".jobs OWNER TO {lp.worker}',
            f'TRUNCATE "{s}".jobs',
            f'CREATE INDEX ON "{s}".jobs (kind)',
            f'CREATE TABLE "{s}".evil (x integer)',
            f'DROP FUNCTION "{s}".add_jobs(jsonb, timestamptz)',
            f"""CREATE OR REPLACE FUNCTION "{s}".add_jobs(specs jsonb, now timestamptz)
                RETURNS TABLE (ord integer, id bigint, deduped boolean)
                LANGUAGE sql AS 'SELECT 1, 1::bigint, false'""",
            f'DROP POLICY aq_worker_all ON "{s}".jobs',
            f'CREATE POLICY more ON "{s}".jobs TO PUBLIC USING (true)',
            f'DELETE FROM "{s}".migrations',
            f'DROP SCHEMA "{s}" CASCADE',
            f"DROP SCHEMA {lp.wrap} CASCADE",
        ):
            with pytest.raises(asyncpg.InsufficientPrivilegeError):
                await w.execute(sql)
        # it cannot install a schema either ...
        with pytest.raises(asyncpg.InsufficientPrivilegeError, match="denied for database"):
            await aioqueue.Queue.connect(lp.dsn_of(lp.worker), schema=f"{s}_new")
    finally:
        await w.close()
    # ... but connecting with migrate=True (what `aioqueue worker` does) to a schema already at
    # this version needs no DDL right
    wq = await aioqueue.Queue.connect(lp.dsn_of(lp.worker), schema=s)
    await wq.close()
    cli = await anyio.to_thread.run_sync(
        functools.partial(aq, "--dsn", lp.dsn_of(lp.worker), "--schema", s, "migrate")
    )
    assert (cli.returncode, cli.stdout.strip()) == (0, "schema is up to date"), cli.stderr


async def test_least_privilege_producer_only_executes_the_wrapper(
    lp: LeastPrivilege, q: aioqueue.Queue
) -> None:
    s = lp.schema
    secret = await q.enqueue("secret.kind", {"token": "s3cret"})
    p = await lp.connect(lp.producer)
    try:
        job_id = await p.fetchval(f"SELECT {lp.wrap}.app_enqueue('public.welcome', '{{\"u\": 1}}')")
        assert (await q.get_job(job_id)).payload == {"u": 1}
        for sql in (
            f'SELECT * FROM "{s}".jobs',
            f'SELECT count(*) FROM "{s}".crons',
            f'SELECT * FROM "{s}".migrations',
            f'SELECT * FROM "{s}".workers',
            f'UPDATE "{s}".jobs SET priority = 1',
            f'DELETE FROM "{s}".jobs WHERE id = {secret.id}',
            f"""INSERT INTO "{s}".jobs (kind) VALUES ('public.direct')""",
            f"""SELECT "{s}".add_job('public.x')""",
            f"""SELECT * FROM "{s}".add_jobs('[{{"kind": "public.x"}}]')""",
            f"""SELECT "{s}".cron_enqueue('c', now(), '{{"kind": "public.x"}}')""",
            f"SELECT nextval('\"{s}\".jobs_id_seq')",
        ):
            with pytest.raises(asyncpg.InsufficientPrivilegeError):
                await p.fetch(sql)
    finally:
        await p.close()
    assert (await q.get_job(secret.id)).priority == 0


async def test_least_privilege_lowpriv_reads_and_calls_nothing(
    lp: LeastPrivilege, q: aioqueue.Queue
) -> None:
    s = lp.schema
    await q.enqueue("secret.kind", {"token": "s3cret"})
    low = await lp.connect(lp.lowpriv)
    try:
        for sql in (
            f'SELECT * FROM "{s}".jobs',
            f'SELECT * FROM "{s}".crons',
            f'SELECT * FROM "{s}".migrations',
            f'SELECT * FROM "{s}".workers',
            f"""SELECT "{s}".add_job('public.x')""",
            f"""SELECT * FROM "{s}".add_jobs('[]')""",
            f"""SELECT "{s}".cron_enqueue('c', now(), '{{"kind": "x"}}')""",
            f"SELECT {lp.wrap}.app_enqueue('public.x')",
        ):
            with pytest.raises(asyncpg.InsufficientPrivilegeError):
                await low.fetch(sql)
        # connecting as the worker would need the schema too: refused before anything runs
        with pytest.raises(asyncpg.InsufficientPrivilegeError):
            await aioqueue.Queue.connect(lp.dsn_of(lp.lowpriv), schema=s, migrate=False)
    finally:
        await low.close()


async def test_least_privilege_worker_claims_a_key_rated_kind(
    lp: LeastPrivilege, q: aioqueue.Queue, conn: asyncpg.Connection
) -> None:
    """aq_worker declares key_rate_limit (set_limits empties the kind's buckets) and claims
    through claim_gated, which writes and prunes flow_key_rates: the documented grants cover it."""
    tasks = aioqueue.Tasks()

    @tasks.task("public.keyrated", key_rate_limit=(1, 3600))
    async def keyrated(ctx: aioqueue.JobContext, payload: Any) -> None:
        return None

    first = await q.enqueue_many(
        [aioqueue.JobSpec(kind="public.keyrated", concurrency_key=k) for k in ("a", "b")] * 2
    )
    wq = await aioqueue.Queue.connect(lp.dsn_of(lp.worker), schema=lp.schema, migrate=False)
    try:
        async with running_worker(wq, tasks, poll_interval=0.05) as (_, rec):
            await rec.wait_for("completed", count=2)
    finally:
        await wq.close()
    states = sorted([(await q.get_job(r.id)).state.value for r in first])
    assert states == ["completed", "completed", "pending", "pending"]
    buckets = await conn.fetchval(f'SELECT count(*) FROM "{lp.schema}".flow_key_rates')
    assert buckets == 2


async def test_security_definer_functions_pin_search_path_and_deny_public(
    lp: LeastPrivilege, conn: asyncpg.Connection
) -> None:
    rows = await conn.fetch(
        """SELECT p.proname, p.prosecdef, coalesce(p.proconfig, '{}') AS proconfig,
                  has_function_privilege('public', p.oid, 'EXECUTE') AS public_exec,
                  EXISTS (SELECT 1 FROM aclexplode(coalesce(p.proacl, acldefault('f', p.proowner)))
                          AS a WHERE a.grantee = 0 AND a.privilege_type = 'EXECUTE') AS public_acl,
                  has_function_privilege($3, p.oid, 'EXECUTE') AS worker,
                  has_function_privilege($4, p.oid, 'EXECUTE') AS producer,
                  has_function_privilege($5, p.oid, 'EXECUTE') AS lowpriv
           FROM pg_proc AS p
           WHERE p.pronamespace IN ($1::regnamespace, $2::regnamespace)""",
        lp.schema,
        lp.wrap,
        lp.worker,
        lp.producer,
        lp.lowpriv,
    )
    by_name = {r["proname"]: r for r in rows}
    assert set(by_name) == {
        *("add_job", "add_jobs", "cron_enqueue", "retry_job", "app_enqueue"),
        *("add_jobs_without_keys", "claim_gated", "set_limits", "pause_queue", "resume_queue"),
        # workflows (migration 0009)
        "add_jobs_core",
        "link_job",
        "group_apply",
        "group_finish",
        "seal_group",
        "jobs_settled",
        "jobs_settled_tally",
        # history (migration 0011)
        "add_jobs_before_history",
        "history_prepare",
        "history_drop_expired",
        # migration 0012
        "notify_workers",
        "max_delay_seconds",
    }
    definers = sorted(r["proname"] for r in rows if r["prosecdef"])
    # aioqueue's own functions run as their caller, but for the history's partition DDL (create
    # ahead, drop at retention): a worker's pruner needs no DDL right of its own
    assert definers == ["app_enqueue", "history_drop_expired", "history_prepare"]
    for r in rows:
        assert "search_path=pg_catalog, pg_temp" in r["proconfig"], r["proname"]
        assert not r["public_exec"] and not r["public_acl"], r["proname"]
        assert not r["lowpriv"], r["proname"]
        assert r["producer"] == (r["proname"] == "app_enqueue"), r["proname"]
        assert r["worker"] == (r["proname"] != "app_enqueue"), r["proname"]


async def test_shadow_now_and_operator_in_public_change_nothing(
    lp: LeastPrivilege, q: aioqueue.Queue, conn: asyncpg.Connection
) -> None:
    """app_lowpriv may create objects in public (as before PostgreSQL 15) and plants now() and
    NOT LIKE there; a caller who puts public before pg_catalog sees them, the wrapper (pinned
    search_path, pg_catalog-qualified calls) and the worker's statements do not."""
    await conn.execute(f"GRANT CREATE ON SCHEMA public TO {lp.lowpriv}")
    low = await lp.connect(lp.lowpriv)
    try:
        await low.execute(
            """
            CREATE FUNCTION public.now() RETURNS timestamptz
                LANGUAGE sql STABLE AS $$ SELECT timestamptz '2100-01-01 00:00+00' $$;
            CREATE FUNCTION public.never(text, text) RETURNS boolean
                LANGUAGE sql IMMUTABLE AS 'SELECT false';
            CREATE OPERATOR public.!~~ (LEFTARG = text, RIGHTARG = text, FUNCTION = public.never);
            """
        )
    finally:
        await low.close()
    p = await lp.connect(lp.producer)
    try:
        await p.execute("SET search_path = public, pg_catalog")
        assert (await p.fetchval("SELECT now()")).year == 2100  # the shadow is live here
        assert await p.fetchval("SELECT 'admin.x' NOT LIKE 'public.%'") is False
        job_id = await p.fetchval(f"SELECT {lp.wrap}.app_enqueue('public.now')")
        with pytest.raises(asyncpg.InsufficientPrivilegeError, match="may not be enqueued"):
            await p.fetchval(f"SELECT {lp.wrap}.app_enqueue('admin.x')")
    finally:
        await p.close()
    job = await q.get_job(job_id)
    real_now = await conn.fetchval("SELECT now()")
    assert job.state is aioqueue.JobState.PENDING
    assert abs((job.run_at - real_now).total_seconds()) < 60

    tasks = aioqueue.Tasks()

    @tasks.task("public.now")
    async def handler(ctx: aioqueue.JobContext, payload: Any) -> None:
        return None

    wq = await aioqueue.Queue.connect(lp.dsn_of(lp.worker), schema=lp.schema, migrate=False)
    try:
        await aioqueue.Worker(wq, tasks, poll_interval=0.2).run(until_empty=True)
    finally:
        await wq.close()
    done = await q.get_job(job_id)
    assert done.state is aioqueue.JobState.COMPLETED
    assert done.finished_at is not None and done.finished_at.year < 2100


# -- S4 secrets -------------------------------------------------------------------------------


def _rendered(exc: BaseException) -> str:
    """Everything an exception can show: message, args, and the traceback of its whole chain
    (causes and suppressed contexts too)."""
    out = []
    seen: set[int] = set()
    todo: list[BaseException | None] = [exc]
    while todo:
        e = todo.pop()
        if e is None or id(e) in seen:
            continue
        seen.add(id(e))
        out += [str(e), repr(e.args), "".join(traceback.format_exception(e, chain=False))]
        todo += [e.__cause__, e.__context__]
    return "\n".join(out)


class Card(msgspec.Struct):
    card: int


async def test_secrets_stay_out_of_logs_errors_and_cli_output(
    dsn: str, schema: str, conn: asyncpg.Connection, caplog: pytest.LogCaptureFixture
) -> None:
    """A sentinel in a payload field and in the DSN password (a role with that password, which
    owns the schema) through enqueue, a failure, a retry and a completion at DEBUG, aioqueue's
    own errors, connection errors and the CLI: only ``jobs show --payload`` shows it."""
    sentinel = f"SENTINEL{secrets.token_hex(8)}"
    roles = Roles(conn)
    roles.password = sentinel
    role = await roles.create("aq_secret")
    database = await conn.fetchval("SELECT current_database()")
    await conn.execute(f'GRANT CREATE ON DATABASE "{database}" TO {role}')
    secret_dsn = dsn_as(dsn, role, sentinel)
    assert sentinel in secret_dsn
    caplog.set_level(logging.DEBUG)  # the root logger: every library's records
    errors: list[str] = []
    cli: dict[str, subprocess.CompletedProcess[str]] = {}

    tasks = aioqueue.Tasks()

    @tasks.task("secret.card", retry_delay=0)
    async def charge(ctx: aioqueue.JobContext, payload: dict[str, str]) -> dict[str, str]:
        ctx.log.debug("charging")
        if ctx.job.attempts == 1:
            raise RuntimeError("card declined")
        return {"charged": payload["card"]}  # the result holds the secret too

    @tasks.task("secret.typed")
    async def typed(ctx: aioqueue.JobContext, payload: Card) -> None:
        return None

    try:
        q = await aioqueue.Queue.connect(secret_dsn, schema=schema)  # migrates as the role
        try:
            out = await q.enqueue("secret.card", {"card": sentinel})
            mistyped = await q.enqueue("secret.typed", {"card": sentinel})
            small = aioqueue.Queue(q.pool, schema=schema, max_payload_bytes=64)
            for bad in (
                lambda: q.enqueue("secret.card", {"card": sentinel + "\x00"}),
                lambda: q.enqueue("secret.card", {"card": sentinel, "n": float("nan")}),
                lambda: q.enqueue("secret.card", {"card": sentinel, "x": object()}),
                lambda: small.enqueue("secret.card", {"card": sentinel * 10}),
            ):
                with pytest.raises(aioqueue.AioqueueError) as caught:
                    await bad()
                errors.append(_rendered(caught.value))
            async with running_worker(q, tasks) as (_, rec):
                await rec.wait_for("completed", out.id)
                await rec.wait_for("failed", mistyped.id)
            job = await q.get_job(out.id)
            assert (job.attempts, job.result) == (2, {"charged": sentinel})  # it did travel
            assert job.error is not None and job.error.message == "card declined"
        finally:
            await q.close()
        # the password in the query string (asyncpg reads it there too)
        parts = urllib.parse.urlsplit(dsn)
        query_dsn = urllib.parse.urlunsplit(
            parts._replace(
                netloc=f"{role}@{parts.netloc.rpartition('@')[2]}",
                query="&".join(filter(None, [parts.query, f"password={sentinel}"])),
            )
        )
        unreachable = dsn_wrong_port(secret_dsn)
        for target in (unreachable, dsn_wrong_port(query_dsn)):
            with pytest.raises(aioqueue.DatabaseUnavailable) as caught:
                await aioqueue.Queue.connect(target, schema=schema)
            errors.append(_rendered(caught.value))

        base = ["-vv", "--dsn", secret_dsn, "--schema", schema]
        for name, args in {
            "status": ["status"],
            "status --json": ["status", "--json"],
            "jobs list": ["jobs", "list"],
            "jobs list --json": ["jobs", "list", "--json"],
            "jobs show": ["jobs", "show", str(out.id)],
            "jobs show --json": ["jobs", "show", str(out.id), "--json"],
            "jobs show (failed)": ["jobs", "show", str(mistyped.id), "--json"],
            "status (query)": ["-vv", "--dsn", query_dsn, "--schema", schema, "status"],
            "unreachable": ["-vv", "--dsn", unreachable, "--schema", schema, "status"],
            "unreachable (query)": ["--dsn", dsn_wrong_port(query_dsn), "status"],
            "--payload": ["jobs", "show", str(out.id), "--payload", "--json"],
        }.items():
            full = args if args[0] in ("-vv", "--dsn") else [*base, *args]
            cli[name] = await anyio.to_thread.run_sync(functools.partial(aq, *full))
    finally:
        await conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
        await roles.drop_all()

    records = [
        logging.Formatter("%(name)s %(levelname)s %(message)s").format(r) + repr(vars(r))
        for r in caplog.records
    ]
    assert any("aioqueue" in r for r in records) and any("DEBUG" in r for r in records)
    assert not [r for r in records if sentinel in r]
    assert len(errors) == 6
    assert not [e for e in errors if sentinel in e]
    assert all("***" in e for e in errors[-2:])  # the DSN is named, masked
    shown = cli.pop("--payload")
    assert shown.returncode == 0 and sentinel in shown.stdout  # asked for explicitly
    for name in ("unreachable", "unreachable (query)"):
        failed = cli[name]
        assert failed.returncode == 1 and "***" in failed.stderr, failed.stderr
        assert "Traceback" not in failed.stderr
    ok = {k: p for k, p in cli.items() if not k.startswith("unreachable")}
    assert all(p.returncode == 0 for p in ok.values()), {k: p.stderr for k, p in ok.items()}
    assert [k for k, p in cli.items() if sentinel in p.stdout + p.stderr] == []


# -- S5 NOTIFY exposure -----------------------------------------------------------------------

HINT = re.compile(r"(|f|t:\d+(\.\d+)?|c:\d+(,\d+)*)")


async def test_notifications_are_opaque_hints_and_spoofs_change_nothing(
    q: aioqueue.Queue, conn: asyncpg.Connection, dsn: str
) -> None:
    """A role with no privilege at all may LISTEN on the schema's channel (PostgreSQL has no
    privilege for channels): while jobs with secret kinds, keys, queue names and payloads are
    enqueued, superseded, cancelled and run, it hears only fixed words, an epoch and job ids.
    It may also NOTIFY: spoofed hints cost a claim or a heartbeat, nothing more."""
    s = q.config.schema
    secret = secrets.token_hex(6)
    kind, key, queue_name = f"kind.{secret}", f"key.{secret}", f"queue.{secret}"
    roles = Roles(conn)
    stranger = await roles.create("app_lowpriv")
    listener = Listener(channel_for(s))
    low = await asyncpg.connect(dsn_as(dsn, stranger, roles.password))
    try:
        await low.add_listener(listener.channel, listener)
        with pytest.raises(asyncpg.InsufficientPrivilegeError):
            await low.fetch(f'SELECT * FROM "{s}".jobs')
        tasks = aioqueue.Tasks()

        @tasks.task(kind)
        async def handler(ctx: aioqueue.JobContext, payload: dict[str, Any]) -> dict[str, str]:
            if payload.get("wait"):
                await anyio.sleep_forever()  # until superseded or cancelled
            return {"secret": secret}

        async with running_worker(q, tasks, poll_interval=30) as (_, rec):
            due = await q.enqueue(kind, {"token": secret}, queue_name=queue_name)
            later = await q.enqueue(kind, {"token": secret}, unique_key=key, delay=3600)
            many = await q.enqueue_many(
                [
                    {"kind": kind, "payload": {"token": secret}, "unique_key": f"{key}.{i}"}
                    for i in range(3)
                ]
            )
            superseded = await q.enqueue(kind, {"wait": True}, unique_key=f"{key}.run")
            cancelled = await q.enqueue(kind, {"wait": True})
            await rec.wait_for("started", superseded.id)
            await rec.wait_for("started", cancelled.id)
            await q.enqueue(
                kind, {"token": secret}, unique_key=f"{key}.run", on_conflict="supersede"
            )
            await q.cancel(cancelled.id)
            await rec.wait_for("cancelled", superseded.id)
            await rec.wait_for("cancelled", cancelled.id)
            for out in (due, *many):
                await rec.wait_for("completed", out.id)
        heard = await listener.drain(low)
        assert heard, "the stranger heard the wake-ups"
        assert [h for h in heard if not HINT.fullmatch(h)] == []
        assert [h for h in heard if secret in h] == []  # no kind, key, queue name or payload
        ids = {int(i) for h in heard if h.startswith("c:") for i in h[2:].split(",")}
        assert ids == {superseded.id, cancelled.id}  # ids of cancelled running jobs, no more
        run_at = (await q.get_job(later.id)).run_at.timestamp()
        epochs = [float(h[2:]) for h in heard if h.startswith("t:")]
        assert any(abs(e - run_at) < 1e-3 for e in epochs)  # when, not what
        print(f"S5: {len(heard)} notifications heard: {sorted(set(heard))}")

        # spoofed hints from the stranger ('t:nan' first, while the worker has no timer yet)
        async with running_worker(q, tasks, poll_interval=30) as (_, rec):
            for spoof in (
                "t:nan",
                "t:inf",
                "t:-inf",
                "t:1e999",
                "t:abc",
                "t:",
                "c:1,2,3",
                "c:" + "9" * 60,
                "c:x",
                "f",
                "released",
                "x" * 7000,
            ):
                await low.execute("SELECT pg_notify($1, $2)", listener.channel, spoof)
            now = await q.enqueue(kind, {})
            await rec.wait_for("completed", now.id, timeout=5)  # the 30 s poll would be late
            soon = await q.enqueue(kind, {}, delay=1.5)
            await rec.wait_for("completed", soon.id, timeout=10)
            job = await q.get_job(soon.id)
            assert job.started_at is not None
            assert 1.5 <= (job.started_at - job.created_at).total_seconds() < 4
            assert not rec.of("lease_lost") and not rec.of("cancelled")
    finally:
        await low.close()
        await roles.drop_all()


# -- S6 resource limits: 100,000 queue names --------------------------------------------------


async def _explain_buffers(
    conn: asyncpg.Connection, sql: str, *args: Any
) -> tuple[list[dict[str, Any]], int]:
    """EXPLAIN (ANALYZE, BUFFERS) in a rolled-back transaction: every plan node, and the shared
    buffers the statement touched (hit + read, children included)."""
    tr = conn.transaction()
    await tr.start()
    try:
        raw = await conn.fetchval("EXPLAIN (ANALYZE, BUFFERS, FORMAT JSON) " + sql, *args)
    finally:
        await tr.rollback()
    plan = json.loads(raw)[0]["Plan"]
    return plan_nodes(plan), int(plan["Shared Hit Blocks"]) + int(plan["Shared Read Blocks"])


def _probes(nodes: list[dict[str, Any]]) -> tuple[int, int]:
    """Serial-queue head checks: (loops, rows found) on jobs_queue_active."""
    found = [n for n in nodes if n.get("Index Name") == "jobs_queue_active"]
    loops = sum(int(n.get("Actual Loops", 0)) for n in found)
    rows = sum(int(n["Actual Rows"]) * int(n.get("Actual Loops", 1)) for n in found)
    return loops, rows


async def test_100k_distinct_queue_names_do_not_slow_claims(
    q: aioqueue.Queue, conn: asyncpg.Connection
) -> None:
    """100,000 due jobs, each in its own queue, against a baseline table of the same size whose
    extra 100,000 jobs are unqueued (and not due): claims of unqueued jobs read the same rows
    and no more than 20 % more buffers (EXPLAIN ANALYZE BUFFERS, not timings)."""
    base = await aioqueue.Queue.connect(q.dsn, schema=f"{q.config.schema}_base")

    async def add(queue: aioqueue.Queue, n: int, spec: str) -> None:
        """n jobs in one add_jobs call (one statement, generate_series)."""
        await conn.execute(
            f"""SELECT count(*) FROM "{queue.config.schema}".add_jobs(
                    (SELECT jsonb_agg({spec}) FROM generate_series(1, {n}) AS g))"""
        )
        await conn.execute(f'ANALYZE "{queue.config.schema}".jobs')

    async def measure(queue: aioqueue.Queue, batch: int) -> tuple[list[dict[str, Any]], int]:
        args = (["k"], [25], [], batch, "w", 30.0, None)
        await _explain_buffers(conn, queue.queries.text("job_claim"), *args)  # warm the cache
        return await _explain_buffers(conn, queue.queries.text("job_claim"), *args)

    unqueued_due = "jsonb_build_object('kind', 'k', 'priority', 1)"
    future = "jsonb_build_object('kind', 'k', 'delay', 86400 + g)"
    try:
        for queue in (base, q):
            await add(queue, 500, unqueued_due)
            await add(queue, 100_000, future)
        await add(base, 100_000, future)
        await add(q, 100_000, "jsonb_build_object('kind', 'k', 'queue_name', 'tenant-' || g)")
        assert (
            await conn.fetchval(
                f"""SELECT count(DISTINCT queue_name) FROM "{q.config.schema}".jobs
                WHERE state = 'pending'"""
            )
            == 100_000
        )
        base_nodes, base_buffers = await measure(base, BATCH)
        nodes, buffers = await measure(q, BATCH)
        for found in (base_nodes, nodes):
            assert_no_seq_scan_on_jobs(found)
            assert rows_read(found, "jobs_claim") <= 2 * BATCH
        assert _probes(nodes) == (0, 0)  # unqueued jobs never look at the queues
        assert buffers <= 1.2 * base_buffers, (buffers, base_buffers)

        # a claim that reaches the queued jobs: one index probe per queued candidate, no walk
        mixed = 500 + 100
        nodes, buffers_mixed = await measure(q, mixed)
        assert_no_seq_scan_on_jobs(nodes)
        assert rows_read(nodes, "jobs_claim") <= 2 * mixed
        loops, rows = _probes(nodes)
        assert 100 <= loops <= 2 * 100 and rows == 0  # each queued candidate is its queue's head
        assert buffers_mixed <= 20 * mixed, buffers_mixed
        print(f"S6 buffers: {base_buffers} -> {buffers} (batch {BATCH}), {buffers_mixed} ({mixed})")
    finally:
        await base.pool.execute(f'DROP SCHEMA "{base.config.schema}" CASCADE')
        await base.close()


# -- A8 clock skew ----------------------------------------------------------------------------

# Run by `aioqueue worker tests.db.test_security:skew_tasks` under libfaketime.
skew_tasks = aioqueue.Tasks()


@skew_tasks.task("skew.sleep")
async def skew_sleep(ctx: aioqueue.JobContext, payload: dict[str, float]) -> None:
    await anyio.sleep(payload.get("seconds", 0))


@skew_tasks.task("skew.fail", max_attempts=1)
async def skew_fail(ctx: aioqueue.JobContext, payload: Any) -> None:
    raise RuntimeError("expected failure")


@skew_tasks.task("skew.tick")
async def skew_tick(ctx: aioqueue.JobContext, payload: Any) -> None:
    return None


skew_tasks.cron("* * * * * *", "skew.tick", name="skew-every-second")


def _faketime_env(skew: str) -> dict[str, str]:
    return {**os.environ, "LD_PRELOAD": str(LIBFAKETIME), "FAKETIME": skew}


async def start_skewed_worker(
    dsn: str, schema: str, skew: str, stderr: Any
) -> asyncio.subprocess.Process:
    """The real CLI worker for skew_tasks with its clock moved by ``skew``; polling every 30 s,
    so a job started on time was woken by its timer, not found by a poll."""
    return await start_worker(
        dsn,
        schema,
        "--poll-interval",
        "30",
        stderr=stderr,
        tasks="tests.db.test_security:skew_tasks",
        env=_faketime_env(skew),
    )


@pytest.mark.skipif(not LIBFAKETIME.exists(), reason="needs libfaketime (apt-get install faketime)")
@pytest.mark.parametrize("skew", ["+2h", "-2h"])
async def test_worker_with_a_skewed_clock_takes_time_from_the_database(
    q: aioqueue.Queue, dsn: str, skew: str, tmp_path: Path
) -> None:
    s = q.config.schema
    epoch = "SELECT extract(epoch FROM clock_timestamp())::float8"
    probe = await anyio.run_process(
        [sys.executable, "-c", "import time; print(time.time())"], env=_faketime_env(skew)
    )
    moved = float(probe.stdout) - await q.pool.fetchval(epoch)
    assert abs(moved - (7200 if skew.startswith("+") else -7200)) < 60  # the skew is real

    async def job(job_id: int) -> aioqueue.Job:
        return await q.get_job(job_id)

    # another worker's job (alive: lease 60 s ahead) and a dead worker's (lease expired)
    alive, dead = [(await q.enqueue("skew.other")).id for _ in range(2)]
    for job_id, lease in ((alive, "60 seconds"), (dead, "-1 second")):
        await q.pool.execute(
            f"""UPDATE "{s}".jobs SET state = 'running', attempts = 1, lease_token = 1,
                       locked_by = 'other-worker', started_at = now(),
                       lease_expires_at = now() + interval '{lease}' WHERE id = $1""",
            job_id,
        )
    long = (await q.enqueue("skew.sleep", {"seconds": 5})).id  # 2.5x the 2 s lease
    failing = (await q.enqueue("skew.fail")).id
    log = (tmp_path / "worker.log").open("w+")
    proc = await start_skewed_worker(dsn, s, skew, log)
    try:
        await until(lambda: _in_state(q, long, "running"), 20)
        leases = await _sample_lease(q, long)
        assert len(leases) >= 10 and all(0 < left <= 2 + 0.5 for left in leases), leases
        delayed = (await q.enqueue("skew.sleep", {"seconds": 0}, delay=3)).id
        await until(lambda: _in_state(q, delayed, "completed"), 20)
        await until(lambda: _in_state(q, long, "completed"), 20)
        await until(lambda: _in_state(q, failing, "failed"), 20)
        await until(lambda: _in_state(q, dead, "scheduled"), 20)
        await until(lambda: _count_kind(q, "skew.tick", "completed", 2), 20)
    finally:
        if proc.returncode is None:
            proc.send_signal(signal.SIGTERM)
        code = await asyncio.wait_for(proc.wait(), 30)
        log.seek(0)
        output = log.read()
        log.close()
    assert code == 0, output
    assert "Traceback" not in output, output

    started = await job(delayed)
    assert started.started_at is not None
    waited = (started.started_at - started.created_at).total_seconds()
    assert 3 <= waited < 3 + 1.5, waited  # by its timer, in database time
    print(f"A8 {skew}: delay=3 job started after {waited:.3f} s, lease left {leases}")
    done = await job(long)
    assert (done.state, done.attempts, done.error) == (aioqueue.JobState.COMPLETED, 1, None)
    other = await job(alive)
    assert (other.state, other.locked_by) == (aioqueue.JobState.RUNNING, "other-worker")
    rescued = await job(dead)
    assert rescued.error is not None and rescued.error.type == "LeaseExpired"
    failed = await job(failing)
    assert failed.finished_at is not None and failed.error is not None
    assert failed.error.at == failed.finished_at  # the error's time is the database's too
    ticks = await q.pool.fetch(
        f"""SELECT run_at, created_at FROM "{s}".jobs WHERE kind = 'skew.tick'
            ORDER BY run_at"""
    )
    assert len(ticks) >= 2
    for t in ticks:  # each slot enqueued as it came due, by the database's clock
        assert 0 <= (t["created_at"] - t["run_at"]).total_seconds() < 2, dict(t)


async def _in_state(q: aioqueue.Queue, job_id: int, state: str) -> bool:
    return (await q.get_job(job_id)).state.value == state


async def _count_kind(q: aioqueue.Queue, kind: str, state: str, n: int) -> bool:
    return len(await q.list_jobs(kind=kind, state=state, limit=n)) >= n


async def _sample_lease(q: aioqueue.Queue, job_id: int) -> list[float]:
    """Seconds left on a running job's lease, in database time, every 0.2 s while it runs."""
    seen = []
    with anyio.fail_after(20):
        while True:
            left = await q.pool.fetchval(
                f"""SELECT extract(epoch FROM lease_expires_at - now())::float8
                    FROM "{q.config.schema}".jobs WHERE id = $1 AND state = 'running'""",
                job_id,
            )
            if left is None:
                return seen
            seen.append(left)
            await anyio.sleep(0.2)  # a subprocess: only the database shows it


async def test_an_upgrade_lets_the_worker_role_prune_finished_groups(
    lp: LeastPrivilege, conn: asyncpg.Connection
) -> None:
    """Migration 0013 (group pruning) grants DELETE on job_groups to the roles that already
    prune jobs, so an install whose grants predate it keeps its pruner working."""
    s = lp.schema
    await conn.execute(
        f"""REVOKE DELETE ON "{s}".job_groups FROM {lp.worker};
            DROP INDEX "{s}".job_groups_finished;
            DELETE FROM "{s}".migrations WHERE version = 13"""
    )
    assert await migrate(conn, s) == [13]
    privilege = "SELECT has_table_privilege($1, $2, 'DELETE')"
    assert await conn.fetchval(privilege, lp.worker, f'"{s}".job_groups')
    assert not await conn.fetchval(privilege, lp.producer, f'"{s}".job_groups')


async def test_a_worker_role_without_delete_on_groups_keeps_pruning_jobs(
    lp: LeastPrivilege, q: aioqueue.Queue, conn: asyncpg.Connection
) -> None:
    """Grants made before migration 0013 (no DELETE on job_groups): the pruner warns once and
    keeps the groups; pruning jobs and workers goes on, nothing raises."""
    s = lp.schema
    await conn.execute(f'REVOKE DELETE ON "{s}".job_groups FROM {lp.worker}')
    group = await q.enqueue_group([aioqueue.JobSpec(kind="a")])
    await q.complete(group.member_ids)
    worker = await lp.connect(lp.worker)
    try:
        retention = {"completed": 0.0, "failed": 0.0, "cancelled": 0.0}
        pruner = Pruner(worker, q.queries, interval=60, retention=retention, move_after=0)
        assert await pruner.prune_groups() == 0
        assert await pruner.prune() >= 0  # no error: group pruning is off for this pruner
    finally:
        await worker.close()
    assert (await q.get_group(group.id)).finished_at is not None
