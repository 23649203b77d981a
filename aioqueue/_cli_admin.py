"""What ``aioqueue status`` and ``aioqueue jobs …`` print: rich tables, or JSON for scripts.

Payloads and results may hold secrets: they are shown only by ``jobs show --payload``.
"""

from __future__ import annotations

from typing import Any

import msgspec
from rich.console import Console
from rich.markup import escape
from rich.progress import Progress
from rich.table import Table
from rich.text import Text

from ._flow import describe
from ._report import age, warnings_for
from .queue import Queue
from .types import Job, JobState

_encoder = msgspec.json.Encoder()


def to_json(value: Any) -> str:
    return _encoder.encode(value).decode()


async def print_status(console: Console, q: Queue, *, as_json: bool) -> None:
    stats = await q.stats()
    warnings = warnings_for(stats)
    if as_json:
        data = msgspec.to_builtins(stats)
        data["warnings"] = warnings
        console.print_json(to_json(data))
        return
    table = Table(title=f"aioqueue status (schema {q.config.schema})")
    table.add_column("kind")
    for state in JobState:
        table.add_column(state.value, justify="right")
    for kind in stats.kinds:
        table.add_row(escape(kind.kind), *(str(kind.counts.get(s.value, 0)) for s in JobState))
    table.add_row("[bold]total[/]", *(f"[bold]{stats.totals[s.value]}[/]" for s in JobState))
    console.print(table)
    console.print(f"due jobs (queue depth): {stats.due}")
    console.print(f"oldest due job: {age(stats.oldest_due)}")
    rate = stats.throughput
    shown = f"{rate:.1f} jobs/s" if rate >= 1 or rate == 0 else f"{rate * 60:.1f} jobs/min"
    console.print(f"throughput: {shown} (last minute)")
    console.print(f"notification queue usage: {stats.notify_queue_usage:.1%}")
    oldest = stats.oldest_transaction_seconds
    console.print(f"oldest open transaction: {'-' if oldest is None else f'{oldest:.0f} s'}")
    hosts = len({w.hostname for w in stats.workers})
    handled = len({k for w in stats.workers for k in w.kinds})
    console.print(
        f"live workers: {len(stats.workers)} on {hosts} host{'s' if hosts != 1 else ''}, "
        f"handling {handled} kind{'s' if handled != 1 else ''}"
    )
    if stats.flow is not None:
        for line in describe(stats.flow):  # flow control: limits, running, held back, paused
            console.print(f"flow {escape(line)}")
    for warning in warnings:  # kinds are user text: never read as markup
        console.print(f"[bold yellow]warning:[/] {escape(warning)}")


def _summary(job: Job) -> dict[str, Any]:
    return {
        "id": job.id,
        "kind": job.kind,
        "state": job.state.value,
        "attempts": job.attempts,
        "max_attempts": job.max_attempts,
        "priority": job.priority,
        "run_at": job.run_at,
        "queue_name": job.queue_name,
        "unique_key": job.unique_key,
    }


def print_jobs(console: Console, jobs: list[Job], *, as_json: bool, limit: int = 0) -> None:
    if as_json:
        console.print_json(to_json([_summary(j) for j in jobs]))
        return
    table = Table()
    for col in ("id", "kind", "state", "attempts", "run_at", "queue_name"):
        table.add_column(col)
    for j in jobs:
        # max_attempts is the task's default until the first claim: not known here
        attempts = f"{j.attempts}/{j.max_attempts}" if j.max_attempts else str(j.attempts)
        table.add_row(str(j.id), j.kind, j.state.value, attempts, age(j.run_at), j.queue_name or "")
    console.print(table)
    if jobs and len(jobs) >= limit:  # a short page is the last one
        console.print(f"next page: --after {jobs[-1].id}")


def print_job(console: Console, job: Job, *, payload: bool, as_json: bool) -> None:
    data = _summary(job)
    data.update(
        created_at=job.created_at,
        started_at=job.started_at,
        finished_at=job.finished_at,
        rescheduled_from=job.rescheduled_from,
        flags=job.flags,
        locked_by=job.locked_by,
        error=None if job.error is None else job.error.message,
    )
    if job.progress is not None:
        data.update(progress=job.progress, progress_message=job.progress_message)
    if job.pending_parents is not None:
        data.update(pending_parents=job.pending_parents)
    if job.group_id is not None:
        data.update(group_id=job.group_id)
    if job.meta is not None:
        data.update(meta=job.meta)
    if payload:
        data.update(
            payload=job.payload,
            result=job.result,
            traceback=None if job.error is None else job.error.traceback,
        )
    if as_json:
        console.print_json(to_json(data))
        return
    table = Table(show_header=False)
    for key, value in data.items():
        if key in ("payload", "result", "meta"):
            shown = to_json(value)  # JSON, as stored (not a Python repr)
        else:
            shown = "" if value is None else str(value)
        table.add_row(key, Text(shown))  # Text: brackets in JSON are not rich markup
    console.print(table)
    if not payload:
        console.print("(payload and result hidden: add --payload to show them)")


async def retry_failed(console: Console, q: Queue, *, kind: str | None) -> int:
    """Retry every failed job (optionally of one kind), with a progress bar."""
    failed: list[Job] = []
    after = None
    while True:
        page = await q.list_jobs(kind=kind, state="failed", limit=500, after=after)
        if not page:
            break
        failed.extend(page)
        after = page[-1].id
    with Progress(console=console, transient=True) as progress:
        bar = progress.add_task("retrying failed jobs", total=len(failed))
        for job in failed:
            await q.retry(job.id)
            progress.advance(bar)
    return len(failed)
