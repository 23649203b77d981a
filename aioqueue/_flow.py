"""Flow control (issue 20): global concurrency limits per kind and per concurrency key, rate
limits, pause/resume of kinds and named queues. Settings live in the ``flow_limits`` and
``flow_paused_queues`` tables (migration 0010); the claim enforces them (``claim_gated``)."""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import logging
import math
import time
from typing import Any

import asyncpg
import msgspec

from ._db.connect import replaces_read_only
from ._db.queries import Executor, Queries
from .errors import ConfigurationError, QueueFull
from .tasks import Tasks, validate_limits
from .types import FlowStatus, KindFlow

_log = logging.getLogger("aioqueue.queue")
UNSET: Any = object()  # a set_limits argument not given: that setting is kept


def settings(**given: Any) -> dict[str, Any]:
    """The settings actually given (UNSET dropped; None kept: it clears that setting)."""
    return {k: v for k, v in given.items() if v is not UNSET}


RATES = ("rate_limit", "key_rate_limit")  # (starts, seconds): a JSON [n, seconds]


def check(kind: str, changes: dict[str, Any]) -> str:
    if not isinstance(kind, str) or not kind:
        raise ConfigurationError(f"kind must be a non-empty string: {kind!r}")
    if not changes:
        raise ConfigurationError("set_limits: give at least one setting")
    validate_limits(kind, {k: v for k, v in changes.items() if v is not None})
    out = {k: (list(v) if k in RATES and v is not None else v) for k, v in changes.items()}
    return msgspec.json.encode(out).decode()


async def set_limits(db: Executor, queries: Queries, kind: str, changes: dict[str, Any]) -> None:
    await queries.flow_set_limits(db, kind=kind, settings=check(kind, changes))


async def declare(db: Executor, queries: Queries, tasks: Tasks) -> None:
    """Write the limits declared on tasks, for kinds without flow settings yet."""
    for kind, limits in tasks.declared_limits().items():
        await queries.flow_declare(db, kind=kind, settings=check(kind, limits))


async def reset(db: Executor, queries: Queries, kind: str) -> bool:
    return await queries.flow_reset(db, kind=kind)


async def pause_queue(db: Executor, queries: Queries, name: str, *, paused: bool) -> None:
    if not isinstance(name, str) or not name:
        raise ConfigurationError(f"queue_name must be a non-empty string: {name!r}")
    if paused:
        await queries.flow_pause_queue(db, queue_name=name)
    else:
        await queries.flow_resume_queue(db, queue_name=name)


async def status(db: Executor, queries: Queries) -> FlowStatus:
    kinds = [
        KindFlow(
            kind=r["kind"],
            concurrency=r["concurrency"],
            key_concurrency=r["key_concurrency"],
            rate_limit=None if r["rate_n"] is None else (r["rate_n"], r["rate_seconds"]),
            key_rate_limit=(
                None if r["key_rate_n"] is None else (r["key_rate_n"], r["key_rate_seconds"])
            ),
            paused=r["paused"],
            max_depth=r["max_depth"],
            running=r["running"],
            running_keys=r["running_keys"],
            busiest_key_running=r["busiest_key_running"],
            throttled=r["throttled"],
        )
        for r in await queries.flow_status(db)
    ]
    queues = await queries.flow_paused_queues(db)
    return FlowStatus(kinds=kinds, paused_queues=queues)


def describe(flow: FlowStatus, now: dt.datetime | None = None) -> list[str]:
    """Lines for ``aioqueue status`` / ``aioqueue limits show``."""
    lines = []
    for k in flow.kinds:
        parts = []
        if k.paused:
            parts.append("PAUSED")
        if k.concurrency is not None:
            parts.append(f"running {k.running}/{k.concurrency}")
        else:
            parts.append(f"running {k.running}")
        if k.key_concurrency is not None:
            parts.append(
                f"per key {k.key_concurrency} (busiest key {k.busiest_key_running},"
                f" {k.running_keys} keys running)"
            )
        if k.rate_limit is not None:
            parts.append(f"rate {k.rate_limit[0]}/{k.rate_limit[1]:g}s")
        if k.key_rate_limit is not None:
            parts.append(f"rate per key {k.key_rate_limit[0]}/{k.key_rate_limit[1]:g}s")
        if k.max_depth is not None:
            parts.append(f"max depth {k.max_depth}")
        if k.throttled:
            parts.append(f"held back {k.throttled}{'+' if k.throttled > 10000 else ''}")
        lines.append(f"{k.kind}: " + ", ".join(parts))
    lines.extend(f"queue {name}: PAUSED" for name in flow.paused_queues)
    return lines


# Backpressure (max_depth). Which kinds have one is cached per Queue and re-read in the
# background every LIMITS_TTL seconds (Queue.connect reads it once), so an enqueue of a kind
# without one costs no lookup and no extra round trip: a maximum set by another process applies
# within about LIMITS_TTL. A kind's depth is counted at most every DEPTH_TTL seconds (up to
# max_depth + 1 entries of the claim index) and this Queue's enqueues since are added: other
# producers' enqueues in that window can overshoot the maximum by that much.
LIMITS_TTL = 1.0
DEPTH_TTL = 0.1


class DepthGuard:
    def __init__(self, db: Executor, queries: Queries) -> None:
        self._db = db
        self._queries = queries
        self._caps: dict[str, int] = {}
        self._caps_at = -math.inf
        self._depth: dict[str, tuple[float, int]] = {}
        self._refreshing: asyncio.Task[None] | None = None

    def needed(self) -> bool:
        """False (most calls): no kind has a max_depth; a stale cache is re-read meanwhile."""
        if self._caps:
            return True
        if time.monotonic() - self._caps_at >= LIMITS_TTL and self._refreshing is None:
            self._refreshing = asyncio.get_running_loop().create_task(self._refresh_quietly())
        return False

    async def load(self) -> None:
        self._caps = await self._queries.flow_max_depths(self._db)
        self._caps_at = time.monotonic()
        self._depth = {k: v for k, v in self._depth.items() if k in self._caps}

    async def preload(self) -> None:
        """At connect. A role without rights on flow_limits (granted before 0010) enqueues
        without the max_depth check rather than failing to connect."""
        try:
            await self.load()
        except asyncpg.InsufficientPrivilegeError:
            _log.warning("no SELECT on flow_limits: max_depth is not checked by this Queue")
            self._caps_at = math.inf

    async def _refresh_quietly(self) -> None:
        try:
            await self.load()
        except Exception as exc:  # the next enqueue after LIMITS_TTL tries again
            _log.debug("max_depth cache refresh failed: %r", exc)
            self._caps_at = time.monotonic()
        finally:
            self._refreshing = None

    def forget(self) -> None:
        self._caps_at = -math.inf

    async def close(self) -> None:
        task = self._refreshing
        if task is not None:
            task.cancel()
            with contextlib.suppress(BaseException):
                await task

    async def check(self, counts: dict[str, int]) -> None:
        """Raise QueueFull if adding ``counts`` (kind -> jobs) goes over a max_depth; nothing
        is counted as enqueued then (all-or-nothing for enqueue_many)."""
        now = time.monotonic()
        if now - self._caps_at >= LIMITS_TTL:
            await self.load()
        fresh: dict[str, tuple[float, int]] = {}
        for kind, n in counts.items():
            cap = self._caps.get(kind)
            if cap is None:
                continue
            at, depth = self._depth.get(kind, (-math.inf, 0))
            if now - at >= DEPTH_TTL:
                at, depth = now, await self._queries.flow_depth(self._db, kind=kind, cap=cap + 1)
            if depth + n > cap:
                raise QueueFull(kind, depth, cap)
            fresh[kind] = (at, depth + n)
        self._depth.update(fresh)


class FlowMixin:
    """The flow-control methods of ``Queue`` (kept here so that queue.py stays small)."""

    pool: asyncpg.Pool
    queries: Queries
    _depth_guard: DepthGuard

    @replaces_read_only
    async def set_limits(
        self,
        kind: str,
        *,
        concurrency: int | None = UNSET,
        key_concurrency: int | None = UNSET,
        rate_limit: tuple[int, float] | None = UNSET,
        key_rate_limit: tuple[int, float] | None = UNSET,
    ) -> None:
        """Change ``kind``'s global limits now, for every worker (None removes one; a setting
        not given is kept). Survives worker restarts: it wins over the task's declaration.
        ``key_rate_limit=(starts, seconds)``: per ``concurrency_key`` of the kind."""
        changes = settings(
            concurrency=concurrency,
            key_concurrency=key_concurrency,
            rate_limit=rate_limit,
            key_rate_limit=key_rate_limit,
        )
        await set_limits(self.pool, self.queries, kind, changes)

    @replaces_read_only
    async def pause(self, kind: str | None = None, *, queue_name: str | None = None) -> None:
        """Stop claiming ``kind`` (or the named queue) on every worker; running jobs finish."""
        await self._set_paused(kind, queue_name, paused=True)

    @replaces_read_only
    async def resume(self, kind: str | None = None, *, queue_name: str | None = None) -> None:
        await self._set_paused(kind, queue_name, paused=False)

    async def _set_paused(self, kind: str | None, queue_name: str | None, *, paused: bool) -> None:
        if (kind is None) == (queue_name is None):
            raise ConfigurationError("give a kind or queue_name=, not both")
        if queue_name is not None:
            await pause_queue(self.pool, self.queries, queue_name, paused=paused)
        else:
            assert kind is not None
            await set_limits(self.pool, self.queries, kind, {"paused": paused})

    async def limits(self) -> FlowStatus:
        """Every kind's flow settings with its running and held-back jobs; paused queues."""
        return await status(self.pool, self.queries)

    @replaces_read_only
    async def set_max_depth(self, kind: str, max_depth: int | None) -> None:
        """Backpressure: an enqueue that would take ``kind`` over ``max_depth`` waiting jobs
        (pending and scheduled) raises QueueFull; None removes the maximum."""
        await set_limits(self.pool, self.queries, kind, {"max_depth": max_depth})
        await self._depth_guard.load()

    @replaces_read_only
    async def reset_limits(self, kind: str) -> bool:
        """Forget ``kind``'s flow settings (workers started later declare theirs again)."""
        return await reset(self.pool, self.queries, kind)
