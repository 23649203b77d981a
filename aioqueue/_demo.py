"""``aioqueue demo``: the whole flow in one process on the embedded server, then a summary."""

from __future__ import annotations

import asyncio
import time
import urllib.parse
from collections import Counter
from pathlib import Path
from typing import Any

import msgspec
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from . import config
from ._db.queries import Queries
from .context import JobContext
from .events import Event
from .queue import Queue
from .tasks import Tasks
from .worker import Worker

DEMO_SCHEMA = "aioqueue_demo"


class Email(msgspec.Struct):
    to: str
    subject: str


def _tasks(attempts_seen: Counter[str]) -> Tasks:
    tasks = Tasks()

    @tasks.task("email.send", max_attempts=5)
    async def send_email(ctx: JobContext, payload: Email) -> dict[str, Any]:
        await asyncio.sleep(0.01)  # pretend to talk to an SMTP server
        return {"sent_to": payload.to}

    @tasks.task("report.build")
    async def build_report(ctx: JobContext, payload: dict[str, Any]) -> dict[str, Any]:
        return {"rows": payload.get("rows", 0)}

    @tasks.task("webhook.flaky", max_attempts=3, retry_delay=0.2)
    async def flaky(ctx: JobContext, payload: dict[str, Any]) -> str:
        attempts_seen["webhook.flaky"] += 1
        if ctx.job.attempts < 2:
            raise ConnectionError("upstream returned 503")
        return "delivered on attempt 2"

    @tasks.task("payment.refund", max_attempts=2, retry_delay=0.1)
    async def refund(ctx: JobContext, payload: dict[str, Any]) -> None:
        raise ValueError(f"order {payload['order']} was never charged")

    @tasks.task("notify.digest")
    async def digest(ctx: JobContext, payload: list[dict[str, Any]]) -> list[str]:
        return [f"told user {item['user']} about {item['event']}" for item in payload]

    tasks.cron("* * * * * *", "demo.tick", name="demo-every-second")

    @tasks.task("demo.tick")
    async def tick(ctx: JobContext, payload: Any) -> str:
        return f"tick {ctx.job.run_at:%H:%M:%S}"

    @tasks.task("noop")
    async def noop(ctx: JobContext, payload: Any) -> None:
        return None

    return tasks


async def _wait_all_final(q: Queue, ids: list[int], timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        states = [(await q.get_job(i)).state for i in ids]
        if all(s.is_final for s in states):
            return
        await asyncio.sleep(0.1)  # the demo watches from outside, like a user would


async def run_demo(dsn: str | None, schema: str, data_dir: Path | None, n_jobs: int) -> None:
    console = Console()
    with console.status("Starting PostgreSQL (embedded unless a DSN is configured)…"):
        q = await Queue.connect(dsn, schema=DEMO_SCHEMA, data_dir=data_dir)
    async with q:
        await Queries(DEMO_SCHEMA).schema_drop(q.pool)
        await q.migrate()
        console.print(f"[bold]aioqueue demo[/] on {_where(q.dsn)}, schema [cyan]{DEMO_SCHEMA}[/]")
        embedded_dir = _embedded_dir(dsn, data_dir)
        if embedded_dir is not None:
            console.print(
                f"the embedded PostgreSQL 18 keeps its data in [cyan]{embedded_dir}[/] and keeps "
                "running for later commands; `aioqueue db stop` stops it, `aioqueue db list` "
                "lists every embedded server started here"
            )
        attempts_seen: Counter[str] = Counter()
        events: Counter[str] = Counter()
        tasks = _tasks(attempts_seen)

        ids: list[int] = []
        dedupes = 0
        for n in range(10):
            out = await q.enqueue("email.send", Email(to=f"user{n}@example.com", subject="Hi"))
            ids.append(out.id)
        for _ in range(3):  # a double-clicked "send welcome email" button
            out = await q.enqueue(
                "email.send",
                Email(to="new@example.com", subject="Welcome"),
                unique_key="welcome:new@example.com",
            )
            dedupes += out.deduped
            ids.append(out.id)
        ids.append((await q.enqueue("report.build", {"rows": 42}, delay=1.0)).id)
        for user, event in [(1, "like"), (1, "comment"), (2, "follow")]:
            out = await q.enqueue(
                "notify.digest",
                [{"user": user, "event": event}],
                unique_key="digest",
                on_conflict="replace",
                delay=0.5,
            )
            ids.append(out.id)
        ids.append((await q.enqueue("webhook.flaky", {"url": "https://example.com/hook"})).id)
        ids.append((await q.enqueue("payment.refund", {"order": 1234})).id)

        worker = Worker(
            q, tasks, concurrency=50, hooks=[lambda e: events.update([e.type])], poll_interval=0.2
        )
        run = asyncio.create_task(worker.run())
        with console.status("Running the mixed workload…"):
            await _wait_all_final(q, sorted(set(ids)))
        await worker.stop(timeout=5)
        await run

        table = Table(title="Jobs by kind and state")
        for col in ("kind", "state", "count"):
            table.add_column(col)
        for kind, state, count in await Queries(DEMO_SCHEMA).demo_counts(q.pool):
            table.add_row(kind, state, str(count))
        console.print(table)

        console.print(f"dedupes: {dedupes} of 3 welcome emails returned the existing job")
        console.print(
            f"retries: {events['retried']} (webhook.flaky succeeded on attempt 2, "
            f"payment.refund failed after 2 attempts)"
        )
        digest = await q.get_job(ids[14])
        console.print(f"batch job: 3 events folded into one job -> {digest.result}")
        ticks = await q.list_jobs(kind="demo.tick", state="completed")
        linked = sum(1 for t in ticks if t.rescheduled_from is not None)
        console.print(
            f"cron: {len(ticks)} occurrence(s) of demo.tick (every second, each slot exactly "
            f"once; {linked} linked to the previous occurrence)"
        )

        await _throughput(console, q, tasks, n_jobs)


async def _throughput(console: Console, q: Queue, tasks: Tasks, n_jobs: int) -> None:
    await q.enqueue_many([{"kind": "noop", "payload": {"i": i}} for i in range(n_jobs)])
    done = 0

    def count(event: Event) -> None:
        nonlocal done
        if event.type == "completed":
            done += 1

    worker = Worker(q, tasks, concurrency=50, hooks=[count])
    started = time.perf_counter()
    with Progress(
        TextColumn("draining no-op jobs"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=console,
        transient=True,
    ) as progress:
        bar = progress.add_task("drain", total=n_jobs)
        run = asyncio.create_task(worker.run(until_empty=True))
        while not run.done():
            progress.update(bar, completed=done)
            await asyncio.wait({run}, timeout=0.1)
        await run
    elapsed = time.perf_counter() - started
    console.print(
        f"throughput: {n_jobs} no-op jobs in {elapsed:.2f} s = "
        f"[bold green]{n_jobs / elapsed:,.0f} jobs/s[/] (one process, concurrency 50)"
    )
    console.print(next_steps())


def _embedded_dir(dsn: str | None, data_dir: Path | None) -> Path | None:
    """The embedded server's data folder, or None when a DSN is configured."""
    if config.resolve_dsn(dsn):
        return None
    return (data_dir or config.data_dir_from_env()).expanduser().resolve()


def next_steps() -> str:
    """What to run after the demo: the CLI on the demo's schema."""
    return (
        f"next: `aioqueue --schema {DEMO_SCHEMA} status`, "
        f"`aioqueue --schema {DEMO_SCHEMA} jobs list`, `aioqueue db psql`"
    )


def _where(dsn: str | None) -> str:
    """Where the demo runs, without credentials."""
    if not dsn:
        return "the given pool"
    url = urllib.parse.urlsplit(dsn)
    query = dict(urllib.parse.parse_qsl(url.query))
    host = url.hostname or query.get("host", "localhost")
    port = url.port or query.get("port", 5432)
    return f"PostgreSQL at {host}:{port}, database {url.path.lstrip('/') or 'postgres'}"
