"""Statements that write new jobs, and the wake-up workers get for them.

Why four insert statements (each file's header says more): keyed and workflow specs go
through the ``add_jobs`` function (every on_conflict mode, dependencies, groups); keyless specs
through one plain INSERT (``jobs_insert_many``); the two defaults-only shapes, one job and a
batch of ``{kind, payload}``, through shorter statements that the enqueue benchmarks show pay
(benchmarks/RESULTS.md, "One enqueue path: before/after").
"""

from __future__ import annotations

import datetime as dt
import re
from functools import cache
from typing import NamedTuple

from ._base import Executor, QueriesBase, ids_from_text, render, statement_texts


class Inserted(NamedTuple):
    """What a keyless insert returns: the new ids in input order, and whether the caller must
    wake workers after its commit (it asked the statement not to, and a job is due now)."""

    ids: list[int]
    wake_after_commit: bool


class Added(NamedTuple):
    """One spec's outcome through ``add_jobs``: its job, and whether it was deduplicated."""

    id: int
    deduped: bool


class EnqueueQueries(QueriesBase):
    async def jobs_add(
        self, db: Executor, *, specs: str, now: dt.datetime | None = None
    ) -> list[Added]:
        """``specs``: a JSON array as ``_spec`` encodes it. In input order."""
        rows = await db.fetch(self._sql["jobs_add"], specs, now)
        return [Added(r["id"], r["deduped"]) for r in rows]

    async def jobs_insert_many(
        self,
        db: Executor,
        *,
        specs: str,
        now: dt.datetime | None = None,
        notify_due: bool = True,
    ) -> Inserted:
        """Keyless specs (no unique_key, max_delay or workflow keys). ``notify_due=False``
        leaves waking workers for due jobs to the caller, after its commit."""
        (row,) = await db.fetch(self._sql["jobs_insert_many"], specs, now, notify_due)
        return Inserted(ids_from_text(row["ids"]), bool(row["wake_after_commit"]))

    async def jobs_insert_bare(self, db: Executor, *, specs: str) -> list[int]:
        """Specs that are only ``{kind, payload}``: the ids, in input order."""
        (row,) = await db.fetch(self._sql["jobs_insert_bare"], specs)
        return ids_from_text(row["ids"])

    async def job_insert_now(
        self, db: Executor, *, kind: str, payload: str, notify: bool = True
    ) -> Inserted:
        """One job with every option at its default (validated by the caller); ``payload`` is
        JSON text."""
        (row,) = await db.fetch(self._sql["job_insert_now"], kind, payload, notify)
        return Inserted([row["id"]], bool(row["wake_after_commit"]))

    async def notify_wake(self, db: Executor) -> None:
        """Wake workers (after a commit that left it to the caller, or a stop that released
        jobs)."""
        await db.execute(self._sql["notify_wake"])


@cache
def sync_add_jobs_text(schema: str) -> str:
    """``jobs_add.sql`` for aioqueue.sync's DB-API cursor: the ``format`` paramstyle psycopg 3
    and Django share, with the parameters in order (specs, now)."""
    lines = render(statement_texts()["jobs_add"], schema).splitlines()
    text = "\n".join(line for line in lines if not line.startswith("--"))
    assert "%" not in text
    numbers = [int(n) for n in re.findall(r"\$(\d+)", text)]
    assert numbers == sorted(set(numbers)), "each parameter once, in order"
    return re.sub(r"\$\d+", "%s", text)
