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
from ._spec import encode_one, encode_specs, loose_list
from .errors import JobNotFound
from .types import EnqueueResult, JobSpec, OnConflict, OnParentFailure

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
    concurrency_key: str | None = None,
    depends_on: Sequence[int] | None = None,
    on_parent_failure: OnParentFailure = "cancel",
    meta: dict[str, Any] | None = None,
    schema: str | None = None,
    max_payload_bytes: int = config.DEFAULT_MAX_PAYLOAD_BYTES,
) -> EnqueueResult:
    """``Queue.enqueue``'s arguments on a DB-API connection; ``schema`` as ``Queue.connect``'s
    (else ``$AIOQUEUE_SCHEMA``, else ``aioqueue``). A ``depends_on`` id that does not exist
    raises JobNotFound (the caller's transaction is then aborted, as after any failed
    statement). A kind's ``max_depth`` is not checked here: it is the async Queue's check."""
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
        flags=loose_list(flags),
        concurrency_key=concurrency_key,
        depends_on=loose_list(depends_on),
        on_parent_failure=on_parent_failure,
        meta=meta,
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
    except Exception as exc:
        if _sqlstate(exc) == "23503":  # foreign_key_violation: depends_on names a missing job
            raise JobNotFound(str(_driver_error(exc)).strip().removeprefix("aioqueue: ")) from exc
        raise
    finally:
        close = getattr(cursor, "close", None)
        if close is not None:
            close()
    return [EnqueueResult(int(r[0]), bool(r[1])) for r in rows]


def _driver_error(exc: BaseException) -> BaseException:
    """The driver's own error (Django wraps it in its own class, the driver's as the cause)."""
    cause = exc.__cause__
    return cause if cause is not None and _code(cause) is not None else exc


def _sqlstate(exc: BaseException) -> str | None:
    return _code(_driver_error(exc))


def _code(exc: BaseException) -> str | None:
    """SQLSTATE of a psycopg 3 (``sqlstate``) or psycopg2 (``pgcode``) error, if any."""
    code = getattr(exc, "sqlstate", None) or getattr(exc, "pgcode", None)
    return code if isinstance(code, str) else None
