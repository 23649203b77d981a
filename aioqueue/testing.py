"""Helpers for users' own tests: run a task inline, drain a queue, assert what was enqueued."""

from __future__ import annotations

import dataclasses
import datetime as dt
from typing import Any

import msgspec

from .context import JobContext, JobInfo
from .events import Event
from .queue import Queue
from .tasks import Tasks
from .types import Job, JobState
from .worker import Worker

__all__ = ["ANY", "assert_enqueued", "assert_not_enqueued", "drain", "enqueued", "run_job"]

WAITING = (JobState.WAITING, JobState.PENDING, JobState.SCHEDULED)  # not run yet


class _Any:
    def __eq__(self, other: object) -> bool:
        return True

    def __hash__(self) -> int:
        return 0

    def __repr__(self) -> str:
        return "ANY"


ANY: Any = _Any()
"""Matches any value, also inside a payload: ``payload={"user": 7, "at": ANY}``."""


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


async def enqueued(
    q: Queue,
    kind: str | None = None,
    *,
    states: tuple[JobState, ...] | None = WAITING,
    queue_name: str | None = None,
) -> list[Job]:
    """Jobs of ``kind`` (any kind if None) in enqueue order. By default only jobs still waiting
    to run (pending or scheduled); ``states=None`` includes running and finished ones."""
    jobs: list[Job] = []
    after: int | None = None
    while True:
        page = await q.list_jobs(kind=kind, queue_name=queue_name, limit=1000, after=after)
        jobs.extend(j for j in page if states is None or j.state in states)
        if len(page) < 1000:
            break
        after = page[-1].id
    jobs.reverse()
    return jobs


async def assert_enqueued(
    q: Queue,
    kind: str,
    payload: Any = ANY,
    *,
    count: int | None = None,
    unique_key: str | None = None,
    queue_name: str | None = None,
    priority: int | None = None,
    states: tuple[JobState, ...] | None = WAITING,
) -> list[Job]:
    """Assert that waiting jobs of ``kind`` match: ``payload`` compares equal (``ANY`` matches any
    value, also nested), and the other arguments when given. ``count`` is the exact number of
    matches expected (default: at least one). Returns the matching jobs in enqueue order; the
    AssertionError lists what was enqueued instead."""
    jobs = await enqueued(q, kind, states=states, queue_name=queue_name)
    if isinstance(payload, msgspec.Struct) or dataclasses.is_dataclass(payload):
        payload = msgspec.to_builtins(payload)  # stored payloads come back as JSON values
    matches = [
        j
        for j in jobs
        if payload == j.payload
        and (unique_key is None or j.unique_key == unique_key)
        and (priority is None or j.priority == priority)
    ]
    if (count is None and not matches) or (count is not None and len(matches) != count):
        wanted = "at least one" if count is None else str(count)
        seen = "\n".join(
            f"  #{j.id} {j.state} payload={j.payload!r} unique_key={j.unique_key!r}" for j in jobs
        )
        raise AssertionError(
            f"expected {wanted} {kind!r} job(s) with payload={payload!r}, found {len(matches)}; "
            f"{kind!r} jobs enqueued:\n{seen or '  (none)'}"
        )
    return matches


async def assert_not_enqueued(q: Queue, kind: str, payload: Any = ANY) -> None:
    """Assert that no waiting job of ``kind`` (with ``payload``, if given) exists."""
    await assert_enqueued(q, kind, payload, count=0)
