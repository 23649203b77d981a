"""Enqueue from synchronous code (Django views, Flask, scripts, a Celery migration) on the
caller's own DB-API connection, in the caller's transaction::

    from aioqueue import sync

    with transaction.atomic():                      # Django; or a psycopg 3 connection
        order = Order.objects.create(...)
        sync.enqueue(connection, "send.email", {"order": order.id})

The job exists only if that transaction commits, and workers are woken at the commit (the SQL
``add_jobs`` notifies inside it). With Django's default autocommit and no ``atomic()`` block,
the job is committed at once. Input is validated exactly as by ``Queue.enqueue`` (same errors,
before anything is sent); every on_conflict mode works (it lives in ``add_jobs``).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, Protocol

from . import config
from ._db.queries import sync_add_jobs_text
from ._spec import encode_one, encode_specs
from .types import EnqueueResult, JobSpec, OnConflict

__all__ = ["enqueue", "enqueue_many"]


class Cursor(Protocol):
    def execute(self, sql: str, params: Sequence[Any]) -> Any: ...

    def fetchall(self) -> Sequence[Sequence[Any]]: ...


class Connection(Protocol):
    """A DB-API connection using the ``%s`` paramstyle: psycopg 3, Django's ``connection``."""

    def cursor(self) -> Any: ...


def enqueue(
    conn: Connection,
    kind: str,
    payload: Any = None,
    *,
    delay: float | dt.timedelta | None = None,
    run_at: dt.datetime | None = None,
    priority: int = 0,
    unique_key: str | None = None,
    on_conflict: OnConflict = "ignore",
    max_delay: float | dt.timedelta | None = None,
    max_attempts: int | None = None,
    queue_name: str | None = None,
    flags: Sequence[str] | None = None,
    schema: str | None = None,
    max_payload_bytes: int = config.DEFAULT_MAX_PAYLOAD_BYTES,
) -> EnqueueResult:
    """``Queue.enqueue``'s arguments on a DB-API connection; ``schema`` as ``Queue.connect``'s
    (else ``$AIOQUEUE_SCHEMA``, else ``aioqueue``)."""
    spec = JobSpec(
        kind=kind,
        payload={} if payload is None else payload,
        delay=delay,
        run_at=run_at,
        priority=priority,
        unique_key=unique_key,
        on_conflict=on_conflict,
        max_delay=max_delay,
        max_attempts=max_attempts,
        queue_name=queue_name,
        flags=None if flags is None else list(flags),
    )
    specs, _ = encode_one(spec, max_payload_bytes=max_payload_bytes)
    return _add(conn, specs, schema)[0]


def enqueue_many(
    conn: Connection,
    specs: Iterable[JobSpec | Mapping[str, Any]],
    *,
    schema: str | None = None,
    max_payload_bytes: int = config.DEFAULT_MAX_PAYLOAD_BYTES,
) -> list[EnqueueResult]:
    """``Queue.enqueue_many`` on a DB-API connection: one statement, outcomes in input order;
    an invalid spec rejects the whole call (naming its index) before anything is sent."""
    encoded, _ = encode_specs(list(specs), max_payload_bytes=max_payload_bytes)
    if encoded == "[]":
        return []
    return _add(conn, encoded, schema)


def _add(conn: Connection, specs: str, schema: str | None) -> list[EnqueueResult]:
    sql = sync_add_jobs_text(config.resolve_schema(schema))
    cursor = conn.cursor()
    try:
        cursor.execute(sql, [specs, None])
        rows = cursor.fetchall()
    finally:
        close = getattr(cursor, "close", None)
        if close is not None:
            close()
    return [EnqueueResult(int(r[0]), bool(r[1])) for r in rows]
