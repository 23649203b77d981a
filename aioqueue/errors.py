"""Every error aioqueue raises on purpose.

    AioqueueError
    ├── ConfigurationError (ValueError)     bad DSN, invalid schema name, bad option, tx= misuse
    ├── InvalidJobError (ValueError)         a job spec field out of its limits; .field names it
    ├── SchemaError
    │   ├── SchemaNotInstalled               migrations not applied and migrate=False
    │   └── SchemaOutdated                   .current, .required
    ├── PayloadError
    │   ├── PayloadEncodeError (TypeError)   msgspec cannot encode it; .path names where
    │   ├── PayloadValueError (ValueError)   NUL character, NaN/Infinity; .path names where
    │   ├── PayloadTooLarge (ValueError)     encoded size over the limit
    │   └── PayloadValidationError           payload does not match the handler's Struct
    ├── UnknownTaskError (LookupError)
    ├── JobNotFound (LookupError)
    ├── JobStateError                        admin call on a job in the wrong state
    ├── WaitTimeout (TimeoutError)           Queue.wait(...) ran out of time
    ├── QueueFull                            an enqueue over a kind's max_depth (backpressure)
    └── DatabaseUnavailable (ConnectionError) PostgreSQL cannot be reached; nothing was sent

Errors raised by the database driver (``asyncpg.PostgresError`` subclasses) pass through
unchanged where aioqueue adds nothing to them.
"""

from __future__ import annotations


class AioqueueError(Exception):
    """Base class of every aioqueue error."""


class ConfigurationError(AioqueueError, ValueError):
    """An option, DSN or schema name is invalid."""


class InvalidJobError(AioqueueError, ValueError):
    """A job spec field is outside its documented limits."""

    def __init__(self, field: str, message: str, *, index: int | None = None) -> None:
        self.field = field
        self.index = index
        where = f"job spec {index}: " if index is not None else ""
        super().__init__(f"{where}{field}: {message}")


class SchemaError(AioqueueError):
    """The database schema does not match this version of aioqueue."""


class SchemaNotInstalled(SchemaError):
    """The aioqueue schema has not been installed; run `aioqueue migrate`."""

    def __init__(self, message: str, schema: str = "aioqueue") -> None:
        super().__init__(message)
        self.schema = schema


class SchemaOutdated(SchemaError):
    """The database schema version differs from the one this code needs."""

    def __init__(self, current: int, required: int) -> None:
        self.current = current
        self.required = required
        super().__init__(
            f"database schema is at version {current}, this aioqueue needs {required}"
            + ("; run `aioqueue migrate`" if current < required else "; upgrade aioqueue")
        )


class PayloadError(AioqueueError):
    """A payload or result cannot be stored or does not match its declared type."""

    def __init__(self, message: str, *, path: str = "$", field: str = "payload") -> None:
        self.path = path
        self.field = field
        super().__init__(message)


class PayloadEncodeError(PayloadError, TypeError):
    """The value cannot be encoded to JSON by msgspec."""


class PayloadValueError(PayloadError, ValueError):
    """The value encodes, but PostgreSQL's jsonb would reject or silently change it."""


class PayloadTooLarge(PayloadError, ValueError):
    """The encoded value is larger than the configured limit."""


class PayloadValidationError(PayloadError):
    """The payload does not match the type the task declared (a permanent failure)."""


class UnknownTaskError(AioqueueError, LookupError):
    """No task is registered under this kind."""


class GroupNotFound(AioqueueError, LookupError):
    """No group with this id exists."""

    def __init__(self, group_id: int) -> None:
        self.group_id = group_id
        super().__init__(f"group {group_id} not found")


class JobNotFound(AioqueueError, LookupError):
    """No job with this id exists (it may have been pruned by retention)."""

    def __init__(self, job_id: int | str) -> None:
        self.job_id = job_id
        if isinstance(job_id, int):
            super().__init__(f"job {job_id} not found (it may have been pruned by retention)")
        else:
            super().__init__(job_id)


class JobStateError(AioqueueError):
    """The job is not in a state that allows this operation."""


class WaitTimeout(AioqueueError, TimeoutError):
    """The job did not reach a final state in time."""


class DatabaseUnavailable(AioqueueError, ConnectionError):
    """PostgreSQL cannot be reached (connection refused, no socket, server starting or shutting
    down): the call sent nothing, so it is safe to retry. A ``ConnectionError`` (an ``OSError``),
    so code catching those keeps working."""


class QueueFull(AioqueueError):
    """An enqueue would take ``kind`` over its ``max_depth`` (``Queue.set_max_depth``); nothing
    was written. Slow the producer down and try again later."""

    def __init__(self, kind: str, depth: int, max_depth: int) -> None:
        self.kind = kind
        self.depth = depth
        self.max_depth = max_depth
        super().__init__(f"queue full: {kind!r} has {depth} waiting jobs, max_depth {max_depth}")
