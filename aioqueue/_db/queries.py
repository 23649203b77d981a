"""Loader for the ``.sql`` files: one statement per file, one typed method per statement.

The schema is substituted once per ``Queries`` (after validation) through the ``/*schema*/``
marker; values always travel as bind parameters.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from functools import cache
from pathlib import Path
from typing import Any

import asyncpg

from ..config import channel_for, validate_schema

SQL_DIR = Path(__file__).parent / "sql"
MIGRATIONS_DIR = Path(__file__).parent / "migrations"
SCHEMA_MARKER = "/*schema*/"
CHANNEL_MARKER = "/*channel*/"

Executor = asyncpg.Connection | asyncpg.Pool | asyncpg.pool.PoolConnectionProxy


@cache
def statement_texts() -> dict[str, str]:
    return {p.stem: p.read_text() for p in sorted(SQL_DIR.glob("*.sql"))}


def render(text: str, schema: str) -> str:
    """Substitute the (validated) schema and its channel into SQL text."""
    schema = validate_schema(schema)
    return text.replace(SCHEMA_MARKER, f'"{schema}"').replace(
        CHANNEL_MARKER, f"'{channel_for(schema)}'"
    )


@cache
def sync_add_jobs_text(schema: str) -> str:
    """``sync_add_jobs.sql`` for ``schema`` (aioqueue.sync runs it on a DB-API cursor)."""
    return render(statement_texts()["sync_add_jobs"], schema)


class Queries:
    """The statements of one schema."""

    def __init__(self, schema: str) -> None:
        self.schema = validate_schema(schema)
        self.sql = {name: render(text, schema) for name, text in statement_texts().items()}

    async def jobs_add(
        self, db: Executor, specs: str, *, now: dt.datetime | None = None
    ) -> list[asyncpg.Record]:
        return await db.fetch(self.sql["jobs_add"], specs, now)

    async def jobs_insert_many(
        self, db: Executor, specs: str, *, now: dt.datetime | None = None
    ) -> list[int]:
        """Keyless specs (no unique_key, no max_delay): the ids, in input order."""
        rows = await db.fetch(self.sql["jobs_insert_many"], specs, now)
        return _ids(rows[0]["ids"])

    async def jobs_insert_bare(self, db: Executor, specs: str) -> list[int]:
        """Specs that are only ``{kind, payload}``: the ids, in input order."""
        rows = await db.fetch(self.sql["jobs_insert_bare"], specs)
        return _ids(rows[0]["ids"])

    async def job_insert(
        self, db: Executor, spec: dict[str, Any], *, notify_due: bool = True
    ) -> asyncpg.Record:
        """One keyless job (``spec`` as built by ``_spec.encode_spec``). ``notify_due=False``
        leaves waking workers for a due job to the caller, after the commit."""
        rows = await db.fetch(
            self.sql["job_insert"],
            spec["kind"],
            bytes(spec["payload"]).decode(),
            spec.get("priority", 0),
            spec.get("run_at"),
            spec.get("delay"),
            spec.get("max_attempts"),
            spec.get("queue_name"),
            spec.get("flags"),
            None,
            notify_due,
            spec.get("concurrency_key"),
        )
        return rows[0]

    async def job_insert_now(
        self, db: Executor, kind: str, payload: str, *, notify_due: bool = True
    ) -> asyncpg.Record:
        """One job with every option at its default (validated by the caller)."""
        rows = await db.fetch(self.sql["job_insert_now"], kind, payload, notify_due)
        return rows[0]

    async def job_get(self, db: Executor, job_id: int) -> asyncpg.Record | None:
        return await db.fetchrow(self.sql["job_get"], job_id)

    async def schema_exists(self, db: Executor) -> bool:
        return bool(await db.fetchval(self.sql["schema_exists"], f'"{self.schema}".migrations'))

    async def migrations_lock(self, db: Executor) -> None:
        await db.execute(self.sql["migrations_lock"], self.schema)

    async def migrations_bootstrap(self, db: Executor) -> None:
        await db.execute(self.sql["migrations_bootstrap"])

    async def migrations_applied(self, db: Executor) -> list[int]:
        return list(await db.fetchval(self.sql["migrations_applied"]))

    async def migrations_record(
        self, db: Executor, version: int, name: str, breaking: bool
    ) -> None:
        await db.execute(self.sql["migrations_record"], version, name, breaking)

    async def job_claim(
        self,
        db: Executor,
        *,
        kinds: list[str],
        default_max_attempts: list[int],
        forbidden_flags: list[str],
        batch: int,
        worker_id: str,
        lease: float,
        now: dt.datetime | None = None,
        gated: bool = False,
    ) -> list[asyncpg.Record]:
        """Claim up to ``batch`` due jobs of ``kinds``. ``gated``: through ``claim_gated`` (the
        kinds with a limit, a rate or a pause, 0010), which takes the same parameters and
        returns the same columns."""
        return await db.fetch(
            self.sql["claim_gated" if gated else "job_claim"],
            kinds,
            default_max_attempts,
            forbidden_flags,
            batch,
            worker_id,
            lease,
            now,
        )

    async def flow_gated_kinds(self, db: Executor, kinds: list[str]) -> list[str]:
        return list(await db.fetchval(self.sql["flow_gated_kinds"], kinds))

    async def job_finish_many(
        self, db: Executor, outcomes: Sequence[Any], *, now: dt.datetime | None = None
    ) -> list[asyncpg.Record]:
        """``outcomes``: objects with id, lease_token, state, result, error, payload, delay,
        give_back attributes (see _consumer.outcome.Outcome)."""
        return await db.fetch(
            self.sql["job_finish_many"],
            [o.id for o in outcomes],
            [o.lease_token for o in outcomes],
            [o.state for o in outcomes],
            [o.result for o in outcomes],
            [o.error for o in outcomes],
            [o.payload for o in outcomes],
            [o.delay for o in outcomes],
            [o.give_back for o in outcomes],
            now,
        )

    async def job_complete_many(
        self, db: Executor, outcomes: Sequence[Any], *, now: dt.datetime | None = None
    ) -> list[asyncpg.Record]:
        """Fast path of ``job_finish_many`` when every outcome is ``completed``."""
        return await db.fetch(
            self.sql["job_complete_many"],
            "{" + ",".join([str(o.id) for o in outcomes]) + "}",
            "{"
            + ",".join([f'"{o.id}":[{o.lease_token},{o.result or "null"}]' for o in outcomes])
            + "}",
            now,
        )

    async def job_outcomes_settled(
        self, db: Executor, *, ids: list[int], lease_tokens: list[int], states: list[str]
    ) -> set[int]:
        """The ids whose outcome is already written under its own lease (see the .sql)."""
        rows = await db.fetch(self.sql["job_outcomes_settled"], ids, lease_tokens, states)
        return {r["id"] for r in rows}

    async def job_heartbeat_many(
        self,
        db: Executor,
        ids: list[int],
        lease_tokens: list[Any],
        *,
        lease: float,
        now: dt.datetime | None = None,
    ) -> list[asyncpg.Record]:
        return await db.fetch(self.sql["job_heartbeat_many"], ids, lease_tokens, lease, now)

    async def job_rescue_expired(
        self, db: Executor, *, limit: int, now: dt.datetime | None = None
    ) -> list[asyncpg.Record]:
        _check_batch(limit)
        return await db.fetch(self.sql["job_rescue_expired"], limit, now)

    async def cron_enqueue(
        self, db: Executor, name: str, slot: dt.datetime, spec: str, *, now: dt.datetime | None
    ) -> int | None:
        value = await db.fetchval(self.sql["cron_enqueue"], name, slot, spec, now)
        return None if value is None else int(value)

    async def cron_last_slots(self, db: Executor, names: list[str]) -> list[asyncpg.Record]:
        return await db.fetch(self.sql["cron_last_slots"], names)

    async def job_prune(
        self,
        db: Executor,
        *,
        state: str,
        retention: float,
        limit: int,
        now: dt.datetime | None = None,
    ) -> int:
        _check_batch(limit)
        return int(await db.fetchval(self.sql["job_prune"], state, retention, limit, now))

    async def worker_register(
        self,
        db: Executor,
        worker_id: str,
        *,
        hostname: str,
        pid: int,
        kinds: list[str],
        started_at: dt.datetime | None = None,
        now: dt.datetime | None = None,
    ) -> dt.datetime:
        """Upsert the worker's row; returns its started_at (database time)."""
        started: dt.datetime = await db.fetchval(
            self.sql["worker_register"], worker_id, hostname, pid, kinds, started_at, now
        )
        return started

    async def worker_touch(
        self, db: Executor, worker_id: str, *, now: dt.datetime | None = None
    ) -> bool:
        """Refresh last_seen_at; False when the worker has no row (it must register again)."""
        return await db.fetchval(self.sql["worker_touch"], worker_id, now) is not None

    async def worker_deregister(self, db: Executor, worker_id: str) -> None:
        await db.execute(self.sql["worker_deregister"], worker_id)

    async def worker_prune(
        self, db: Executor, *, older_than: float, now: dt.datetime | None = None
    ) -> int:
        return int(await db.fetchval(self.sql["worker_prune"], older_than, now))

    async def notify_wake(self, db: Executor, payload: str = "") -> None:
        await db.execute(self.sql["notify_wake"], payload)

    async def fetch(self, db: Executor, name: str, *args: Any) -> list[asyncpg.Record]:
        """Run a named statement (for statements whose wrapper adds nothing)."""
        return await db.fetch(self.sql[name], *args)

    async def job_history_move(
        self,
        db: Executor,
        *,
        state: str,
        limit: int,
        older_than: float,
        now: dt.datetime | None = None,
    ) -> int:
        """Move up to ``limit`` jobs of ``state`` finished ``older_than`` seconds ago or more
        into jobs_history; returns how many."""
        _check_batch(limit)
        return int(await db.fetchval(self.sql["job_history_move"], state, limit, older_than, now))

    async def history_prepare(
        self, db: Executor, *, ahead: float, now: dt.datetime | None = None
    ) -> int:
        """Create history partitions up to ``ahead`` seconds from now; returns how many."""
        return int(await db.fetchval(self.sql["history_prepare"], ahead, now))

    async def history_drop_expired(
        self,
        db: Executor,
        *,
        state: str,
        retention: float,
        max_partitions: int = 10,
        now: dt.datetime | None = None,
    ) -> int:
        """Drop ``state``'s history partitions past ``retention``; returns the rows dropped."""
        return int(
            await db.fetchval(
                self.sql["history_drop_expired"], state, retention, max_partitions, now
            )
        )


# rescue and prune batches: their statements bound their plans' cost with a constant LIMIT
MAX_MAINTENANCE_BATCH = 1000


def _check_batch(limit: int) -> None:
    if not 1 <= limit <= MAX_MAINTENANCE_BATCH:
        raise ValueError(f"batch must be between 1 and {MAX_MAINTENANCE_BATCH}, got {limit}")


def _ids(text: str | None) -> list[int]:
    """Ids sent as one comma-separated text (NULL when there are none)."""
    return list(map(int, text.split(","))) if text else []
