"""JobAccess for a worker's handlers: progress reports, written in batches, and the results of
a job's parents.

``ctx.progress()`` only records the latest report of each job in memory; one statement every
``interval`` seconds writes them all (job_progress_many.sql, fenced by lease token, so a job
this worker lost is not touched). A handler reporting in a tight loop costs no round trips.
"""

from __future__ import annotations

import logging
from typing import Any

import anyio
from anyio.abc import TaskStatus

from .._codec import decode_json
from .._db.errors import TRANSIENT
from .._db.queries import Executor, Queries
from .._service import RETRYING

_log = logging.getLogger("aioqueue.worker")


class JobAccessService:
    name = "progress"

    def __init__(self, db: Executor, queries: Queries, *, interval: float = 0.5) -> None:
        self._db = db
        self._queries = queries
        self._interval = interval
        self._latest: dict[int, tuple[int, float, str | None]] = {}
        self._has_items = anyio.Event()

    def progress(self, job_id: int, lease_token: int, fraction: float, message: str | None) -> None:
        self._latest[job_id] = (lease_token, fraction, message)
        self._has_items.set()

    def reported(self, job_id: int) -> bool:
        """Whether ``job_id`` has a report not yet written (most jobs never report)."""
        return job_id in self._latest

    async def flush_job(self, job_id: int) -> None:
        """Write ``job_id``'s unwritten report now: its last report is stored before its
        outcome (a job that never reported costs a dict lookup)."""
        report = self._latest.pop(job_id, None)
        if report is not None:
            await self._write({job_id: report})

    async def parent_results(self, job_id: int) -> dict[int, Any]:
        rows = await self._queries.job_parent_results(self._db, child_id=job_id)
        return {
            r["id"]: decode_json(r["result"]) if r["state"] == "completed" else None for r in rows
        }

    async def run(self, *, task_status: TaskStatus[None] = anyio.TASK_STATUS_IGNORED) -> None:
        task_status.started()
        try:
            while True:
                await self._has_items.wait()
                await anyio.sleep(self._interval)
                await self._flush()
        finally:
            with anyio.CancelScope(shield=True), anyio.move_on_after(2.0):
                await self._flush()

    async def _flush(self) -> None:
        self._has_items = anyio.Event()
        batch, self._latest = self._latest, {}
        if batch:
            await self._write(batch)

    async def _write(self, batch: dict[int, tuple[int, float, str | None]]) -> None:
        ids = list(batch)
        try:
            await self._queries.job_progress_many(
                self._db,
                ids=ids,
                lease_tokens=[batch[i][0] for i in ids],
                fractions=[batch[i][1] for i in ids],
                messages=[batch[i][2] for i in ids],
            )
        except TRANSIENT as exc:
            # progress is advisory: a report lost to an outage is replaced by the next one
            _log.warning("progress: write failed (%s)", type(exc).__name__, extra=RETRYING)
