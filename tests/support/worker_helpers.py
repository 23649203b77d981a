"""Helpers for in-process worker tests: wait on lifecycle events instead of sleeping."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Callable
from typing import Any

import anyio

import aioqueue

FAST = {
    "poll_interval": 0.2,
    "lease": 3.0,
    "heartbeat_interval": 0.5,
    "rescue_interval": 0.5,
}


class Recorder:
    """Subscribes to a worker's events; ``wait`` returns once a predicate over them holds."""

    def __init__(self) -> None:
        self.events: list[aioqueue.Event] = []
        self._changed = anyio.Event()

    def __call__(self, event: aioqueue.Event) -> None:
        self.events.append(event)
        self._changed.set()

    def of(self, type_: str, job_id: int | None = None) -> list[aioqueue.Event]:
        return [
            e for e in self.events if e.type == type_ and (job_id is None or e.job_id == job_id)
        ]

    async def wait(self, predicate: Callable[[Recorder], bool], timeout: float = 10) -> None:
        with anyio.fail_after(timeout):
            while not predicate(self):
                self._changed = anyio.Event()
                await self._changed.wait()

    async def wait_for(
        self, type_: str, job_id: int | None = None, count: int = 1, timeout: float = 10
    ) -> list[aioqueue.Event]:
        await self.wait(lambda r: len(r.of(type_, job_id)) >= count, timeout)
        return self.of(type_, job_id)


@contextlib.asynccontextmanager
async def running_worker(
    q: aioqueue.Queue, tasks: aioqueue.Tasks, **kwargs: Any
) -> AsyncIterator[tuple[aioqueue.Worker, Recorder]]:
    """A worker running in the background for the duration of the block."""
    rec = Recorder()
    settings = {**FAST, **kwargs}
    worker = aioqueue.Worker(q, tasks, hooks=[rec], **settings)
    async with anyio.create_task_group() as tg:
        tg.start_soon(worker.run)
        await rec.wait_for("worker_started")
        try:
            yield worker, rec
        finally:
            with anyio.CancelScope(shield=True):
                await worker.stop(timeout=settings.get("stop_timeout", 2))


async def drop_checks(db: Any, schema: str) -> None:
    """Let a test write rows an older install, a restored dump or a superuser's UPDATE may
    hold: drop every CHECK of ``schema``'s jobs table and of its domains (the column types)."""
    table_checks = await db.fetch(
        "SELECT conname FROM pg_constraint WHERE conrelid = $1::regclass AND contype = 'c'",
        f'"{schema}".jobs',
    )
    for check in table_checks:
        await db.execute(f'ALTER TABLE "{schema}".jobs DROP CONSTRAINT "{check["conname"]}"')
    domain_checks = await db.fetch(
        "SELECT t.typname, c.conname FROM pg_constraint c JOIN pg_type t ON t.oid = c.contypid "
        "JOIN pg_namespace n ON n.oid = t.typnamespace WHERE n.nspname = $1",
        schema,
    )
    for d in domain_checks:
        await db.execute(
            f'ALTER DOMAIN "{schema}"."{d["typname"]}" DROP CONSTRAINT "{d["conname"]}"'
        )
