"""TaskHandle: what ``@tasks.task`` returns. Calling it runs the handler (as the bare function
did); ``.enqueue(q, payload)`` and ``.enqueue_many(q, payloads)`` enqueue its kind with the payload
type-checked against the handler's annotation (procrastinate's ``defer``, Celery's ``delay``)."""

from __future__ import annotations

import datetime as dt
import functools
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from typing import Any, Generic, Protocol, TypeVar

from .context import JobContext
from .types import EnqueueResult, JobSpec, OnConflict, OnParentFailure

P = TypeVar("P")
R = TypeVar("R")


class Enqueuer(Protocol):
    """What a handle needs of a Queue (structural: tasks sit below the queue's layer)."""

    async def enqueue(
        self,
        kind: str,
        payload: Any = ...,
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
        depends_on: Sequence[int] | None = None,
        on_parent_failure: OnParentFailure = "cancel",
        meta: dict[str, Any] | None = None,
        tx: Any = None,
    ) -> EnqueueResult: ...

    async def enqueue_many(
        self, specs: Iterable[JobSpec | Mapping[str, Any]], *, tx: Any = None
    ) -> list[EnqueueResult]: ...


class TaskHandle(Generic[P, R]):
    """A registered handler for ``kind``. ``await handle(ctx, payload)`` runs it directly."""

    def __init__(self, kind: str, fn: Callable[[JobContext, P], Awaitable[R]]) -> None:
        self.kind = kind
        self.fn = fn
        functools.update_wrapper(self, fn)

    def __call__(self, ctx: JobContext, payload: P) -> Awaitable[R]:
        return self.fn(ctx, payload)

    def __repr__(self) -> str:
        return f"TaskHandle({self.kind!r}, {getattr(self.fn, '__qualname__', self.fn)!r})"

    async def enqueue(
        self,
        queue: Enqueuer,
        payload: P,
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
        depends_on: Sequence[int] | None = None,
        on_parent_failure: OnParentFailure = "cancel",
        meta: dict[str, Any] | None = None,
        tx: Any = None,
    ) -> EnqueueResult:
        """``queue.enqueue(self.kind, payload, ...)``, with ``payload`` typed."""
        workflow: dict[str, Any] = {}  # only when given: other Enqueuers may predate them
        if depends_on is not None:
            workflow.update(depends_on=depends_on, on_parent_failure=on_parent_failure)
        if meta is not None:
            workflow["meta"] = meta
        return await queue.enqueue(
            self.kind,
            payload,
            delay=delay,
            run_at=run_at,
            priority=priority,
            unique_key=unique_key,
            on_conflict=on_conflict,
            max_delay=max_delay,
            max_attempts=max_attempts,
            queue_name=queue_name,
            flags=flags,
            tx=tx,
            **workflow,
        )

    async def enqueue_many(
        self,
        queue: Enqueuer,
        payloads: Iterable[P],
        *,
        delay: float | dt.timedelta | None = None,
        priority: int = 0,
        queue_name: str | None = None,
        tx: Any = None,
    ) -> list[EnqueueResult]:
        """One round trip for many payloads of this kind (the same options for each)."""
        if delay is None and priority == 0 and queue_name is None:
            specs: list[Any] = [{"kind": self.kind, "payload": p} for p in payloads]
        else:
            specs = [
                JobSpec(
                    kind=self.kind, payload=p, delay=delay, priority=priority, queue_name=queue_name
                )
                for p in payloads
            ]
        return await queue.enqueue_many(specs, tx=tx)
