"""Workflows on Queue: groups with a completion callback, chains, a job's parents and children.

Dependencies themselves are JobSpec fields (``depends_on``, ``on_parent_failure``) that the
``add_jobs`` function applies (migration 0009); what settles children and counts group members
is a trigger on the jobs table, so it holds for every statement that finishes a job.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import anyio
import asyncpg
import msgspec

from . import config
from ._db import connect as _connect
from ._db.queries import Queries
from ._spec import as_spec, dumps, encode_spec
from ._waiter import Waiter
from .errors import (
    ConfigurationError,
    GroupNotFound,
    InvalidJobError,
    JobNotFound,
    WaitTimeout,
)
from .types import EnqueueResult, Group, JobLink, JobSpec, Ref


class WorkflowMixin:
    """The workflow methods of ``Queue`` (kept here so that queue.py stays small)."""

    pool: asyncpg.Pool
    queries: Queries
    config: config.QueueConfig

    def _get_waiter(self) -> Waiter:  # pragma: no cover - Queue defines it
        raise NotImplementedError

    @_connect.replaces_read_only
    async def enqueue_group(
        self,
        specs: Iterable[JobSpec | Mapping[str, Any]],
        *,
        on_complete: JobSpec | Mapping[str, Any] | None = None,
        seal: bool = True,
        tx: Any = None,
    ) -> Group:
        """Enqueue ``specs`` as one group. ``on_complete`` is enqueued exactly once, when the
        group is sealed and every member has finished (completed, failed or cancelled); its
        handler reads the outcome counts in ``ctx.group``. ``seal=False`` keeps the group open
        for ``add_to_group`` until ``seal_group``. Members may depend on each other by
        ``Ref(i)``. All or nothing: one transaction (the caller's with ``tx=``)."""
        callback = None
        if on_complete is not None:
            encoded = encode_spec(
                as_spec(on_complete), max_payload_bytes=self.config.max_payload_bytes
            )
            callback = dumps(encoded)
        items = list(specs)
        objects = self._member_objects(items)  # every spec checked before any SQL
        async with self._transaction(tx) as db:
            group_id = await self.queries.group_create(db, on_complete=callback)
            ids = await self._add_members(db, group_id, objects)
            if seal:
                await self.queries.group_seal(db, id=group_id)
            row = await self.queries.group_get(db, id=group_id)
        assert row is not None  # created above, in this transaction
        return _group(row, ids)

    @_connect.replaces_read_only
    async def add_to_group(
        self, group_id: int, specs: Iterable[JobSpec | Mapping[str, Any]], *, tx: Any = None
    ) -> list[EnqueueResult]:
        """Add members to an open group; raises InvalidJobError if it is sealed or missing."""
        objects = self._member_objects(list(specs))
        async with self._transaction(tx) as db:
            ids = await self._add_members(db, group_id, objects)
        return [EnqueueResult(i, False) for i in ids]

    @_connect.replaces_read_only
    async def seal_group(self, group_id: int) -> Group:
        """No more members; if every member has finished already, the callback runs now."""
        if not await self.queries.group_seal(self.pool, id=group_id):
            raise GroupNotFound(group_id)
        return await self.get_group(group_id)

    async def get_group(self, group_id: int) -> Group:
        row = await self.queries.group_get(self.pool, id=group_id)
        if row is None:
            raise GroupNotFound(group_id)
        return _group(row, [])

    async def wait_group(self, group_id: int, *, timeout: float | None = None) -> Group:
        """Wait until the group is sealed and every member has finished (its callback, if any,
        is enqueued then: wait for it with ``wait(group.callback_id)``)."""
        found: list[Group] = []

        async def finished() -> bool:
            group = await self.get_group(group_id)
            found[:] = [group]
            return group.finished_at is not None

        try:
            with anyio.fail_after(timeout):
                await self._get_waiter().wait_until(finished)
        except TimeoutError:
            raise WaitTimeout(f"group {group_id} not finished after {timeout} s") from None
        return found[0]

    async def enqueue_chain(
        self, specs: Iterable[JobSpec | Mapping[str, Any]], *, tx: Any = None
    ) -> list[EnqueueResult]:
        """Enqueue a linear sequence: each job depends on the one before it (and on its own
        ``depends_on``, if any). A failed step cancels the rest, unless a step says
        ``on_parent_failure="run"``. One round trip; results in input order."""
        chained: list[JobSpec] = []
        for i, item in enumerate(specs):
            spec = as_spec(item, i)
            if i > 0:
                spec = msgspec.structs.replace(
                    spec, depends_on=[*(spec.depends_on or ()), Ref(i - 1)]
                )
            chained.append(spec)
        enqueue_many = getattr(self, "enqueue_many")  # noqa: B009 - Queue's, mypy cannot see it
        results: list[EnqueueResult] = await enqueue_many(chained, tx=tx)
        return results

    async def job_family(self, job_id: int, *, limit: int = 100) -> list[JobLink]:
        """A job's parents and children (depends_on), up to ``limit`` of each."""
        if not isinstance(limit, int) or not 1 <= limit <= 10_000:
            raise ConfigurationError("limit must be an integer between 1 and 10000")
        return await self.queries.job_family(self.pool, id=job_id, limit=limit)

    # -- helpers -----------------------------------------------------------------------------

    def _member_objects(self, items: Sequence[JobSpec | Mapping[str, Any]]) -> list[Any]:
        return [
            encode_spec(as_spec(item, i), max_payload_bytes=self.config.max_payload_bytes, index=i)
            for i, item in enumerate(items)
        ]

    async def _add_members(self, db: Any, group_id: int, objects: list[Any]) -> list[int]:
        if not objects:
            return []
        for obj in objects:
            obj["group_id"] = group_id
        try:
            rows = await self.queries.jobs_add(db, specs=dumps(objects))
        except asyncpg.InvalidParameterValueError as exc:  # a sealed or missing group
            raise InvalidJobError("group_id", str(exc).removeprefix("aioqueue: ")) from None
        except asyncpg.ForeignKeyViolationError as exc:  # depends_on names a missing job
            raise JobNotFound(str(exc).removeprefix("aioqueue: ")) from None
        return [added.id for added in rows]

    def _transaction(self, tx: Any) -> Any:
        return _in_transaction(self.pool, tx)


class _in_transaction:
    """The caller's transaction (``tx=``), else a pooled connection in a new transaction."""

    def __init__(self, pool: asyncpg.Pool, tx: Any) -> None:
        self._pool = pool
        self._tx = tx
        self._conn: Any = None
        self._xact: Any = None

    async def __aenter__(self) -> Any:
        if self._tx is not None:
            return await _connect.unwrap_tx(self._tx)
        self._conn = await self._pool.acquire()
        self._xact = self._conn.transaction()
        await self._xact.start()
        return self._conn

    async def __aexit__(self, exc_type: Any, exc: Any, tb: Any) -> None:
        if self._conn is None:
            return
        try:
            if exc_type is None:
                await self._xact.commit()
            else:
                await self._xact.rollback()
        finally:
            await self._pool.release(self._conn)


def _group(row: asyncpg.Record, member_ids: list[int]) -> Group:
    return Group(**dict(row), member_ids=member_ids)
