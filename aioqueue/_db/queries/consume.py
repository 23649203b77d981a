"""Statements of the worker side: claim, outcomes, leases, progress, rescue, prune, cron and
the workers' registry."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from typing import Any

import asyncpg

from ... import config
from ._base import Executor, QueriesBase, check_batch


class ConsumeQueries(QueriesBase):
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
        """Claim up to ``batch`` due jobs of ``kinds`` (``default_max_attempts`` aligned with
        them: each kind's task default). ``gated``: through ``claim_gated`` instead."""
        if gated:
            return await self.claim_gated(
                db,
                kinds=kinds,
                default_max_attempts=default_max_attempts,
                forbidden_flags=forbidden_flags,
                batch=batch,
                worker_id=worker_id,
                lease=lease,
                now=now,
            )
        return await db.fetch(
            self._sql["job_claim"],
            kinds,
            default_max_attempts,
            forbidden_flags,
            batch,
            worker_id,
            lease,
            now,
        )

    async def claim_gated(
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
    ) -> list[asyncpg.Record]:
        """The claim for kinds with a limit, a rate or a pause (0010): job_claim's parameters
        and columns."""
        return await db.fetch(
            self._sql["claim_gated"],
            kinds,
            default_max_attempts,
            forbidden_flags,
            batch,
            worker_id,
            lease,
            now,
        )

    async def flow_gated_kinds(self, db: Executor, *, kinds: list[str]) -> list[str]:
        return list(await db.fetchval(self._sql["flow_gated_kinds"], kinds))

    async def job_finish_many(
        self, db: Executor, *, outcomes: Sequence[Any], now: dt.datetime | None = None
    ) -> list[asyncpg.Record]:
        """``outcomes``: objects with id, lease_token, state, result, error, payload, delay,
        give_back attributes (see _consumer.outcome.Outcome)."""
        return await db.fetch(
            self._sql["job_finish_many"],
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
        self, db: Executor, *, outcomes: Sequence[Any], now: dt.datetime | None = None
    ) -> list[asyncpg.Record]:
        """Fast path of ``job_finish_many`` when every outcome is ``completed``: the ids and a
        JSON object id -> [lease_token, result] (results are JSON text already)."""
        return await db.fetch(
            self._sql["job_complete_many"],
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
        rows = await db.fetch(self._sql["job_outcomes_settled"], ids, lease_tokens, states)
        return {r["id"] for r in rows}

    async def job_heartbeat_many(
        self,
        db: Executor,
        *,
        ids: list[int],
        lease_tokens: list[Any],
        lease: float,
        now: dt.datetime | None = None,
    ) -> list[asyncpg.Record]:
        """The jobs still ours (id, cancel_requested); a missing id lost its lease."""
        return await db.fetch(self._sql["job_heartbeat_many"], ids, lease_tokens, lease, now)

    async def job_progress_many(
        self,
        db: Executor,
        *,
        ids: list[int],
        lease_tokens: list[int],
        fractions: list[float],
        messages: list[str | None],
    ) -> None:
        await db.fetch(self._sql["job_progress_many"], ids, lease_tokens, fractions, messages)

    async def job_parent_results(self, db: Executor, *, child_id: int) -> list[asyncpg.Record]:
        """The parents of a job: (id, state, result JSON text)."""
        return await db.fetch(self._sql["job_parent_results"], child_id)

    async def job_rescue_expired(
        self,
        db: Executor,
        *,
        limit: int,
        now: dt.datetime | None = None,
        default_max_attempts: int = config.DEFAULT_MAX_ATTEMPTS,
    ) -> list[asyncpg.Record]:
        check_batch(limit)
        return await db.fetch(self._sql["job_rescue_expired"], limit, now, default_max_attempts)

    async def job_prune(
        self,
        db: Executor,
        *,
        state: str,
        retention: float,
        limit: int,
        now: dt.datetime | None = None,
    ) -> int:
        check_batch(limit)
        return int(await db.fetchval(self._sql["job_prune"], state, retention, limit, now))

    async def cron_enqueue(
        self, db: Executor, *, name: str, slot: dt.datetime, spec: str, now: dt.datetime | None
    ) -> int | None:
        """The job enqueued for ``slot``, or None when another scheduler took it."""
        value = await db.fetchval(self._sql["cron_enqueue"], name, slot, spec, now)
        return None if value is None else int(value)

    async def cron_last_slots(self, db: Executor, *, names: list[str]) -> list[asyncpg.Record]:
        """(name, last_slot) of the crons that ran."""
        return await db.fetch(self._sql["cron_last_slots"], names)

    async def db_clock(self, db: Executor) -> float:
        """The database's clock in epoch seconds."""
        return float(await db.fetchval(self._sql["db_clock"]))

    async def worker_register(
        self,
        db: Executor,
        *,
        worker_id: str,
        hostname: str,
        pid: int,
        kinds: list[str],
        started_at: dt.datetime | None = None,
        now: dt.datetime | None = None,
    ) -> dt.datetime:
        """Upsert the worker's row; returns its started_at (database time)."""
        started: dt.datetime = await db.fetchval(
            self._sql["worker_register"], worker_id, hostname, pid, kinds, started_at, now
        )
        return started

    async def worker_touch(
        self, db: Executor, *, worker_id: str, now: dt.datetime | None = None
    ) -> bool:
        """Refresh last_seen_at; False when the worker has no row (it must register again)."""
        return await db.fetchval(self._sql["worker_touch"], worker_id, now) is not None

    async def worker_deregister(self, db: Executor, *, worker_id: str) -> None:
        await db.execute(self._sql["worker_deregister"], worker_id)

    async def worker_prune(
        self, db: Executor, *, older_than: float, now: dt.datetime | None = None
    ) -> int:
        return int(await db.fetchval(self._sql["worker_prune"], older_than, now))
