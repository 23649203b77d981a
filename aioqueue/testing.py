"""Helpers for users' own tests: run a task inline, drain a queue, see what was enqueued."""

from __future__ import annotations

import datetime as dt
from typing import Any

import msgspec

from .context import JobContext, JobInfo
from .events import Event
from .queue import Queue
from .tasks import Tasks
from .worker import Worker

__all__ = ["drain", "run_job"]


async def run_job(
    tasks: Tasks, kind: str, payload: Any = None, *, state: Any = None, attempts: int = 1
) -> Any:
    """Call the handler of ``kind`` directly (no database), with the payload validated exactly as
    a worker would (through JSON and the handler's annotation). Returns the handler's result."""
    task = tasks[kind]
    value = task.decoder.decode(msgspec.json.encode({} if payload is None else payload))
    now = dt.datetime.now(dt.UTC)
    info = JobInfo(
        id=0,
        kind=kind,
        attempts=attempts,
        max_attempts=task.max_attempts or 25,
        priority=0,
        run_at=now,
        created_at=now,
        queue_name=None,
        unique_key=None,
        flags=[],
    )
    return await task.fn(JobContext(info, state=state, worker_id="testing"), value)


async def drain(q: Queue, tasks: Tasks, **worker_options: Any) -> dict[str, int]:
    """Run a worker until no due job is left; returns counts of outcomes by event type."""
    counts: dict[str, int] = {}

    def count(event: Event) -> None:
        counts[event.type] = counts.get(event.type, 0) + 1

    options = {"poll_interval": 0.1, **worker_options}
    await Worker(q, tasks, hooks=[count], **options).run(until_empty=True)
    return counts
