"""Defaults, validated configuration objects, and the one reader of DSN environment variables."""

from __future__ import annotations

import datetime as dt
import os
import re
from collections.abc import Mapping
from pathlib import Path

import msgspec

from .errors import ConfigurationError

DEFAULT_SCHEMA = "aioqueue"
DEFAULT_DATA_DIR = Path(".aioqueue") / "pgdata"
DEFAULT_MAX_PAYLOAD_BYTES = 1024 * 1024
DEFAULT_MAX_RESULT_BYTES = 1024 * 1024
DEFAULT_MAX_ATTEMPTS = 25
DEFAULT_POOL_MAX_SIZE = 10

DEFAULT_CONCURRENCY = 50
DEFAULT_POLL_INTERVAL = 1.0
DEFAULT_LEASE = 30.0
DEFAULT_HEARTBEAT_INTERVAL = 5.0
DEFAULT_RESCUE_INTERVAL = 5.0
DEFAULT_STOP_TIMEOUT = 30.0
DEFAULT_FLUSH_INTERVAL = 0.005
DEFAULT_FLUSH_SIZE = 500
DEFAULT_RETENTION = 24 * 3600.0
DEFAULT_FAILED_RETENTION = 7 * 24 * 3600.0
DEFAULT_PRUNE_INTERVAL = 60.0
# Finished jobs move from the hot table to jobs_history (migration 0011) once they finished
# HISTORY_MOVE_AFTER seconds ago, by a pass at least every HISTORY_MOVE_INTERVAL seconds.
HISTORY_MOVE_INTERVAL = 5.0
HISTORY_MOVE_AFTER = 60.0

# The workers table (RELIABILITY E1): a worker refreshes its row on its heartbeat, at least
# every WORKER_TOUCH_INTERVAL; `status` counts a worker as live if it was seen within
# WORKER_LIVE_WINDOW (three touches at the least, six default heartbeats); the pruner deletes
# the row of a worker unseen for WORKER_FORGET_AFTER (it crashed without deleting it).
WORKER_TOUCH_INTERVAL = 10.0
WORKER_LIVE_WINDOW = 30.0
WORKER_FORGET_AFTER = 3600.0

KIND_MAX_BYTES = 128
META_MAX_BYTES = 4096  # Job.meta, as JSON (a CHECK in migration 0009 holds it for SQL too)
MAX_PARENTS = 1000  # depends_on entries per job
PROGRESS_MESSAGE_MAX_BYTES = 1024
QUEUE_NAME_MAX_BYTES = 128
UNIQUE_KEY_MAX_BYTES = 512
FLAG_MAX_BYTES = 128
FLAGS_MAX_COUNT = 32
SMALLINT_MIN, SMALLINT_MAX = -32768, 32767
# run_at's range, [RUN_AT_MIN, RUN_AT_MAX) UTC: the jobs_run_at_range check of the job_run_at
# domain (migration 0008) holds it in the database; the Python API checks it before any SQL.
RUN_AT_MIN = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
RUN_AT_MAX = dt.datetime(3000, 1, 1, tzinfo=dt.UTC)
INT_MAX = 2**31 - 1
# delay=, max_delay= and Snooze(seconds) at most: 100 years (run_at= reaches further if needed);
# SQL's max_delay_seconds() (migration 0012) holds the same value (tests/unit/test_package_rules.py)
MAX_DELAY_SECONDS = 100 * 365 * 24 * 3600
# notify_workers() (migration 0012) skips the wake-up while the server's notification queue is
# fuller than this (a full queue fails every NOTIFY); status warns from here on
NOTIFY_QUEUE_LIMIT = 0.5

_SCHEMA_RE = re.compile(r"[a-z_][a-z0-9_]{0,47}")

DSN_ENV_VARS = ("AIOQUEUE_DSN", "DATABASE_URL")


def validate_schema(schema: object) -> str:
    """Return ``schema`` if it is a plain lower-case identifier; raise before any SQL otherwise."""
    if not isinstance(schema, str) or not _SCHEMA_RE.fullmatch(schema):
        raise ConfigurationError(
            f"invalid schema name {schema!r}: use 1-48 characters of [a-z0-9_], "
            "starting with a letter or underscore"
        )
    if schema.startswith("pg_"):
        raise ConfigurationError(f"invalid schema name {schema!r}: the pg_ prefix is reserved")
    return schema


def resolve_schema(schema: str | None = None, env: Mapping[str, str] | None = None) -> str:
    """An explicit schema, else $AIOQUEUE_SCHEMA, else "aioqueue"; validated."""
    environ = os.environ if env is None else env
    if schema is None:
        schema = environ.get("AIOQUEUE_SCHEMA") or DEFAULT_SCHEMA
    return validate_schema(schema)


def channel_for(schema: str) -> str:
    """The fixed notification channel of a schema (short: never derived from kinds or names)."""
    return f"aioqueue_{validate_schema(schema)}"


_DRIVER_SUFFIX = re.compile(r"^(postgres(?:ql)?)\+\w+://")


def resolve_dsn(dsn: str | None = None, env: Mapping[str, str] | None = None) -> str | None:
    """An explicit DSN, else $AIOQUEUE_DSN, else $DATABASE_URL, else None (embedded server).
    An SQLAlchemy-style URL (``postgresql+asyncpg://``, as apps often keep in DATABASE_URL)
    is accepted: the driver part is dropped."""
    environ = os.environ if env is None else env
    value = dsn or next((environ[n] for n in DSN_ENV_VARS if environ.get(n)), None)
    return _DRIVER_SUFFIX.sub(r"\1://", value) if value else None


def transaction_pooling_from_env(env: Mapping[str, str] | None = None) -> bool:
    """$AIOQUEUE_TRANSACTION_POOLING=1: the DSN is a pooler in transaction mode (PgBouncer)."""
    environ = os.environ if env is None else env
    value = environ.get("AIOQUEUE_TRANSACTION_POOLING", "").strip().lower()
    if value in ("", "0", "false", "no", "off"):
        return False
    if value in ("1", "true", "yes", "on"):
        return True
    raise ConfigurationError(
        f"AIOQUEUE_TRANSACTION_POOLING must be 1 or 0 (true/false), got {value!r}"
    )


def data_dir_from_env(env: Mapping[str, str] | None = None) -> Path:
    """Where the embedded server keeps its data: $AIOQUEUE_DATA_DIR or ./.aioqueue/pgdata."""
    environ = os.environ if env is None else env
    value = environ.get("AIOQUEUE_DATA_DIR")
    return Path(value) if value else DEFAULT_DATA_DIR


def mask_dsn(dsn: str) -> str:
    """The DSN with any password (``user:password@`` or ``password=``) replaced, for messages
    and logs."""
    dsn = re.sub(r"(://[^:/@]*:)[^@]*@", r"\1***@", dsn)
    return re.sub(r"(\bpassword=)[^&#\s]*", r"\1***", dsn, flags=re.IGNORECASE)


class QueueConfig(msgspec.Struct, frozen=True, kw_only=True):
    """Producer-side settings, validated once."""

    schema: str = DEFAULT_SCHEMA
    max_payload_bytes: int = DEFAULT_MAX_PAYLOAD_BYTES

    def __post_init__(self) -> None:
        validate_schema(self.schema)
        if not isinstance(self.max_payload_bytes, int) or self.max_payload_bytes < 1:
            raise ConfigurationError("max_payload_bytes must be a positive integer")

    @property
    def channel(self) -> str:
        return channel_for(self.schema)


class WorkerConfig(msgspec.Struct, frozen=True, kw_only=True):
    """Consumer settings, validated once. Durations are seconds."""

    concurrency: int = DEFAULT_CONCURRENCY
    poll_interval: float = DEFAULT_POLL_INTERVAL
    lease: float = DEFAULT_LEASE
    # default: lease / 3, at most 5 s; capped at WORKER_TOUCH_INTERVAL (the workers row)
    heartbeat_interval: float | None = None
    rescue_interval: float = DEFAULT_RESCUE_INTERVAL
    stop_timeout: float = DEFAULT_STOP_TIMEOUT
    flush_interval: float = DEFAULT_FLUSH_INTERVAL
    flush_size: int = DEFAULT_FLUSH_SIZE
    max_result_bytes: int = DEFAULT_MAX_RESULT_BYTES
    retention: float | None = DEFAULT_RETENTION  # completed jobs; None keeps them
    failed_retention: float | None = DEFAULT_FAILED_RETENTION
    cancelled_retention: float | None = DEFAULT_FAILED_RETENTION
    prune_interval: float = DEFAULT_PRUNE_INTERVAL
    # finished jobs move to jobs_history this long after they finished; lower it at high rates
    # (the hot table holds about rate x this many finished rows)
    history_move_after: float = HISTORY_MOVE_AFTER
    stuck_grace: float = 5.0  # how long a cancelled handler may ignore it before it is abandoned
    # False: no LISTEN connection (e.g. behind PgBouncer in transaction pooling); jobs are found
    # by polling every poll_interval, cancellations of running jobs at the next heartbeat
    listen: bool = True

    def __post_init__(self) -> None:
        if not isinstance(self.concurrency, int) or self.concurrency < 1:
            raise ConfigurationError(
                f"concurrency must be an integer >= 1, got {self.concurrency!r}"
            )
        for name in (
            "poll_interval",
            "lease",
            "rescue_interval",
            "flush_interval",
            "prune_interval",
            "stuck_grace",
        ):
            value = getattr(self, name)
            if not isinstance(value, int | float) or not value > 0:
                raise ConfigurationError(f"{name} must be a positive number of seconds")
        if self.stop_timeout < 0:
            raise ConfigurationError("stop_timeout must be >= 0")
        if self.heartbeat_interval is not None and not 0 < self.heartbeat_interval < self.lease:
            raise ConfigurationError("heartbeat_interval must be positive and below the lease")
        if not isinstance(self.history_move_after, int | float) or not (
            0 <= self.history_move_after < float("inf")
        ):
            raise ConfigurationError("history_move_after must be seconds >= 0")
        for name in ("retention", "failed_retention", "cancelled_retention"):
            value = getattr(self, name)
            if value is not None and (not isinstance(value, int | float) or value < 0):
                raise ConfigurationError(f"{name} must be seconds >= 0, or None to keep jobs")
        if self.flush_size < 1 or self.max_result_bytes < 1:
            raise ConfigurationError("flush_size and max_result_bytes must be >= 1")

    @property
    def heartbeat(self) -> float:
        return self.heartbeat_interval or min(self.lease / 3, 5.0)
