"""Tasks: the registry of handlers (declarations only, no I/O)."""

from __future__ import annotations

import inspect
import math
import typing
from collections.abc import Awaitable, Callable, Iterable
from typing import Any, TypeVar

import msgspec

from . import _cron, config
from ._backoff import RetryDelay
from ._handle import TaskHandle
from .context import JobContext
from .errors import ConfigurationError, UnknownTaskError

Handler = Callable[[JobContext, Any], Awaitable[Any]]
P = TypeVar("P")
R = TypeVar("R")
_ANY_TYPES: tuple[Any, ...] = (Any, object, None, inspect.Parameter.empty)


class Task:
    """One registered handler and its options."""

    __slots__ = (
        "decoder",
        "fn",
        "kind",
        "limits",
        "max_attempts",
        "payload_type",
        "retry_delay",
        "timeout",
    )

    def __init__(
        self,
        kind: str,
        fn: Handler,
        *,
        max_attempts: int | None,
        timeout: float | None,
        retry_delay: RetryDelay,
        limits: dict[str, Any] | None = None,
    ) -> None:
        self.kind = kind
        self.fn = fn
        self.limits = limits or {}  # declared flow limits (_flow.declare writes them)
        self.max_attempts = max_attempts
        self.timeout = timeout
        self.retry_delay = retry_delay
        self.payload_type = _payload_type(fn)
        self.decoder: msgspec.json.Decoder[Any] = (
            msgspec.json.Decoder()
            if self.payload_type is None
            else msgspec.json.Decoder(self.payload_type)
        )

    def __repr__(self) -> str:
        return f"Task({self.kind!r}, {getattr(self.fn, '__qualname__', self.fn)!r})"


def _payload_type(fn: Handler) -> Any:
    """The annotation of the handler's payload parameter (None: accept any JSON)."""
    params = list(inspect.signature(fn).parameters.values())
    if len(params) < 2:
        raise ConfigurationError(
            f"handler {fn.__qualname__} must accept (ctx, payload), got {len(params)} parameters"
        )
    try:
        hints = typing.get_type_hints(fn)
    except Exception:  # unresolvable forward references: fall back to no validation
        hints = {}
    annotation = hints.get(params[1].name, params[1].annotation)
    return None if annotation in _ANY_TYPES else annotation


def _valid_text(value: object, max_bytes: int) -> bool:
    """1..max_bytes of valid UTF-8 without NUL (what a text column and index can hold)."""
    if not isinstance(value, str) or "\x00" in value:
        return False
    try:
        return 1 <= len(value.encode("utf-8")) <= max_bytes
    except UnicodeEncodeError:
        return False


def _validate_options(
    kind: str, max_attempts: int | None, timeout: float | None, retry_delay: RetryDelay
) -> None:
    if not _valid_text(kind, config.KIND_MAX_BYTES):
        raise ConfigurationError(
            f"task kind must be 1-{config.KIND_MAX_BYTES} bytes of UTF-8 without NUL: {kind!r}"
        )
    if max_attempts is not None and (not isinstance(max_attempts, int) or max_attempts < 1):
        raise ConfigurationError(f"task {kind!r}: max_attempts must be an integer >= 1")
    if timeout is not None and (
        not isinstance(timeout, int | float) or not math.isfinite(timeout) or timeout <= 0
    ):
        raise ConfigurationError(f"task {kind!r}: timeout must be a positive number of seconds")
    if (
        retry_delay is not None
        and not callable(retry_delay)
        and (not isinstance(retry_delay, int | float) or not 0 <= retry_delay < math.inf)
    ):
        raise ConfigurationError(
            f"task {kind!r}: retry_delay must be seconds >= 0 or a callable(attempts)"
        )


def validate_limits(kind: str, limits: dict[str, Any]) -> dict[str, Any]:
    """The given (not None) flow limits, checked; raises ConfigurationError naming the bad one.
    ``None`` values are dropped (a declaration cannot clear a limit)."""
    out: dict[str, Any] = {}
    for name, value in limits.items():
        if value is None:
            continue
        if name in ("concurrency", "key_concurrency", "max_depth"):
            lo = 1 if name == "key_concurrency" else 0
            hi = 2**63 - 1 if name == "max_depth" else 2**31 - 1
            if isinstance(value, bool) or not isinstance(value, int) or not lo <= value <= hi:
                raise ConfigurationError(f"task {kind!r}: {name} must be an integer >= {lo}")
        elif name in ("rate_limit", "key_rate_limit"):
            ok = isinstance(value, tuple | list) and len(value) == 2
            n, per = (value[0], value[1]) if ok else (None, None)
            if (
                not ok
                or isinstance(n, bool)
                or not isinstance(n, int)
                or not 1 <= n <= 2**31 - 1
                or isinstance(per, bool)
                or not isinstance(per, int | float)
                or not 0 < per <= 31_536_000
            ):
                raise ConfigurationError(
                    f"task {kind!r}: {name} must be (starts >= 1, seconds in (0, 1 year])"
                )
            value = [n, float(per)]
        elif name == "paused":
            if not isinstance(value, bool):
                raise ConfigurationError(f"task {kind!r}: paused must be a bool")
        else:
            raise ConfigurationError(f"task {kind!r}: unknown limit {name!r}")
        out[name] = value
    return out


class CronSpec(msgspec.Struct, frozen=True, kw_only=True):
    """A recurring job: ``kind`` enqueued at every slot of ``expr`` (in ``timezone``)."""

    name: str
    expr: str
    kind: str
    payload: Any = None
    timezone: str = "UTC"
    backfill: float = 0.0  # seconds: missed slots this recent are enqueued on start
    priority: int = 0
    max_attempts: int | None = None
    queue_name: str | None = None


class Tasks:
    """A registry of task handlers::

    tasks = aioqueue.Tasks()

    @tasks.task("send.email", max_attempts=5, timeout=30)
    async def send_email(ctx: aioqueue.JobContext, payload: Email) -> dict: ...
    """

    def __init__(self) -> None:
        self._tasks: dict[str, Task] = {}
        self._crons: dict[str, CronSpec] = {}

    def task(
        self,
        kind: str,
        *,
        max_attempts: int | None = None,
        timeout: float | None = None,
        retry_delay: RetryDelay = None,
        concurrency: int | None = None,
        key_concurrency: int | None = None,
        rate_limit: tuple[int, float] | None = None,
        key_rate_limit: tuple[int, float] | None = None,
    ) -> Callable[[Callable[[JobContext, P], Awaitable[R]]], TaskHandle[P, R]]:
        """Register ``async def handler(ctx, payload)`` for ``kind``; returns a ``TaskHandle``
        (call it to run the handler; ``await handle.enqueue(q, payload)`` to enqueue).
        ``concurrency``, ``key_concurrency``, ``rate_limit=(starts, seconds)`` and
        ``key_rate_limit=(starts, seconds)`` (per ``concurrency_key``) are global limits across
        all workers, written when a worker starts if the kind has no flow settings yet
        (run-time settings from ``Queue.set_limits`` win)."""
        _validate_options(kind, max_attempts, timeout, retry_delay)
        limits = validate_limits(
            kind,
            {
                "concurrency": concurrency,
                "key_concurrency": key_concurrency,
                "rate_limit": rate_limit,
                "key_rate_limit": key_rate_limit,
            },
        )

        def register(fn: Callable[[JobContext, P], Awaitable[R]]) -> TaskHandle[P, R]:
            if not inspect.iscoroutinefunction(fn):
                raise ConfigurationError(f"task {kind!r}: handler must be an `async def` function")
            if kind in self._tasks:
                raise ConfigurationError(f"task {kind!r} is already registered")
            self._tasks[kind] = Task(
                kind,
                fn,
                max_attempts=max_attempts,
                timeout=timeout,
                retry_delay=retry_delay,
                limits=limits,
            )
            return TaskHandle(kind, fn)

        return register

    def cron(
        self,
        expr: str,
        kind: str,
        *,
        payload: Any = None,
        name: str | None = None,
        timezone: str = "UTC",
        backfill: float = 0.0,
        priority: int = 0,
        max_attempts: int | None = None,
        queue_name: str | None = None,
    ) -> CronSpec:
        """Enqueue ``kind`` at every slot of the cron expression ``expr`` (5 fields, or 6 with
        seconds last), exactly once per slot however many workers run. ``backfill`` seconds:
        slots missed while no worker ran, if that recent, are enqueued on start."""
        _cron.validate(expr)
        _cron.zone(timezone)
        _validate_options(kind, max_attempts, None, None)
        cron_name = name if name is not None else f"{kind} {expr}"
        if not _valid_text(cron_name, 128):
            raise ConfigurationError(
                f"cron name must be 1-128 bytes of UTF-8 without NUL: {cron_name!r}"
            )
        if cron_name in self._crons:
            raise ConfigurationError(f"cron {cron_name!r} is already registered")
        if not isinstance(backfill, int | float) or not 0 <= backfill < math.inf:
            raise ConfigurationError(f"cron {cron_name!r}: backfill must be seconds >= 0")
        spec = CronSpec(
            name=cron_name,
            expr=expr,
            kind=kind,
            payload=payload,
            timezone=timezone,
            backfill=float(backfill),
            priority=priority,
            max_attempts=max_attempts,
            queue_name=queue_name,
        )
        self._crons[cron_name] = spec
        return spec

    def subset(self, *, kinds: Iterable[str] | None = None, exclude: Iterable[str] = ()) -> Tasks:
        """A registry with only ``kinds`` (all if None) minus ``exclude``: a worker that runs
        part of an application's tasks (``aioqueue worker --kinds/--exclude``). Crons stay: a
        slot is enqueued once however many workers schedule it. Unknown names are an error."""
        wanted = set(self._tasks) if kinds is None else set(kinds)
        excluded = set(exclude)
        unknown = sorted((wanted | excluded) - set(self._tasks))
        if unknown:
            raise ConfigurationError(
                f"not registered: {', '.join(map(repr, unknown))} "
                f"(registered: {', '.join(sorted(self._tasks))})"
            )
        keep = wanted - excluded
        if not keep:
            raise ConfigurationError("no task left to run after --kinds/--exclude")
        out = Tasks()
        out._tasks = {k: t for k, t in self._tasks.items() if k in keep}
        out._crons = dict(self._crons)
        return out

    @property
    def crons(self) -> list[CronSpec]:
        return list(self._crons.values())

    def __getitem__(self, kind: str) -> Task:
        try:
            return self._tasks[kind]
        except KeyError:
            raise UnknownTaskError(f"no task registered for kind {kind!r}") from None

    def __contains__(self, kind: object) -> bool:
        return kind in self._tasks

    def __len__(self) -> int:
        return len(self._tasks)

    @property
    def kinds(self) -> list[str]:
        return sorted(self._tasks)

    def declared_limits(self) -> dict[str, dict[str, Any]]:
        """The flow limits declared on tasks (``concurrency=`` ...), by kind."""
        return {k: t.limits for k, t in self._tasks.items() if t.limits}

    def default_max_attempts(self) -> list[int]:
        """Per kind (aligned with ``kinds``): the task's max_attempts, else the global default."""
        return [self._tasks[k].max_attempts or config.DEFAULT_MAX_ATTEMPTS for k in self.kinds]
