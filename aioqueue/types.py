"""Data that crosses the database: job states, specs, results.

Job state machine::

    enqueue ──► pending ──(claim)──► running ──► completed
       │           ▲                   │  │
       └► scheduled┘ (run_at due)      │  └──► failed      (attempts exhausted, or permanent error)
              ▲                        │
              └──── retry (backoff) ◄──┘   graceful stop → pending, attempt given back
                                           lease expired → scheduled (attempt counted) or failed
    pending / scheduled / running ──(cancel)──► cancelled
    enqueue with depends_on ──► waiting ──(every parent completed)──► pending / scheduled
                                   └──(a parent failed or cancelled)──► cancelled (or pending
                                       with on_parent_failure="run")

``pending`` jobs are due now; ``scheduled`` jobs wait for ``run_at`` (a delay or a retry
backoff). Workers claim both once ``run_at`` has passed. ``waiting`` jobs wait for their
parents (``depends_on``); the claim never reads them.
"""

from __future__ import annotations

import datetime as dt
import enum
from typing import Any, Literal

import msgspec

__all__ = [
    "EnqueueResult",
    "Group",
    "GroupOutcome",
    "HistoryPoint",
    "Job",
    "JobLink",
    "JobSpec",
    "JobState",
    "OnConflict",
    "OnParentFailure",
    "Ref",
    "Stats",
    "WorkerInfo",
]


class JobState(enum.StrEnum):
    WAITING = "waiting"  # for its parents (depends_on)
    PENDING = "pending"
    SCHEDULED = "scheduled"
    RUNNING = "running"
    COMPLETED = "completed"
    CANCELLED = "cancelled"
    FAILED = "failed"

    @property
    def is_final(self) -> bool:
        return self in (JobState.COMPLETED, JobState.CANCELLED, JobState.FAILED)


OnConflict = Literal["ignore", "replace", "preserve_run_at", "unsafe_dedupe", "supersede"]
ON_CONFLICT_MODES: tuple[str, ...] = (
    "ignore",
    "replace",
    "preserve_run_at",
    "unsafe_dedupe",
    "supersede",
)

OnParentFailure = Literal["cancel", "run"]


class Ref(msgspec.Struct, frozen=True):
    """In ``enqueue_many``/``enqueue_group``, ``depends_on=[Ref(i)]`` names the job of spec ``i``
    of the same call (an earlier one: ``i`` is below the spec's own index)."""

    index: int


class JobSpec(msgspec.Struct, kw_only=True, frozen=True):
    """One job to enqueue; the keyword arguments of ``Queue.enqueue`` as a value."""

    kind: str
    payload: Any = msgspec.field(default_factory=dict)
    delay: float | dt.timedelta | None = None
    run_at: dt.datetime | None = None
    priority: int = 0
    unique_key: str | None = None
    on_conflict: OnConflict = "ignore"
    max_delay: float | dt.timedelta | None = None
    max_attempts: int | None = None
    queue_name: str | None = None
    flags: list[str] | tuple[str, ...] | None = None
    concurrency_key: str | None = None  # a task's key_concurrency limits jobs per key
    # workflows: parents by id (or Ref to an earlier spec of the same call), what a parent's
    # failure does to this job, and small user headers (e.g. a W3C traceparent)
    depends_on: list[int | Ref] | tuple[int | Ref, ...] | None = None
    on_parent_failure: OnParentFailure = "cancel"
    meta: dict[str, Any] | None = None


class EnqueueResult(msgspec.Struct, frozen=True):
    """Outcome of one enqueue: the job id, and whether an existing job was returned instead."""

    id: int
    deduped: bool


class JobError(msgspec.Struct, frozen=True, kw_only=True):
    """The last failure of a job."""

    message: str
    type: str = ""
    traceback: str = ""
    attempt: int = 0
    at: dt.datetime | None = None


class Job(msgspec.Struct, frozen=True, kw_only=True):
    """A job as stored. ``max_attempts`` is None until a worker fills in the task's default."""

    id: int
    kind: str
    payload: Any
    state: JobState
    priority: int
    run_at: dt.datetime
    attempts: int
    max_attempts: int | None
    unique_key: str | None
    queue_name: str | None
    flags: list[str]
    result: Any
    error: JobError | None
    locked_by: str | None
    lease_expires_at: dt.datetime | None
    rescheduled_from: int | None
    created_at: dt.datetime
    started_at: dt.datetime | None
    finished_at: dt.datetime | None
    meta: dict[str, Any] | None = None
    progress: float | None = None  # 0..1, from ctx.progress()
    progress_message: str | None = None
    group_id: int | None = None
    pending_parents: int | None = None  # parents not finished yet (None: no depends_on)
    concurrency_key: str | None = None  # the key its kind's key_concurrency counts it under


class JobLink(msgspec.Struct, frozen=True, kw_only=True):
    """A parent or child of a job (``Queue.job_family``)."""

    relation: Literal["parent", "child"]
    id: int
    kind: str
    state: str


class GroupOutcome(msgspec.Struct, frozen=True, kw_only=True):
    """How a group's members ended: the ``ctx.group`` of its ``on_complete`` callback."""

    id: int
    total: int
    completed: int
    failed: int
    cancelled: int


class Group(msgspec.Struct, frozen=True, kw_only=True):
    """A group of jobs (``Queue.enqueue_group``). ``finished_at`` is set when the group is sealed
    and every member has finished; ``callback_id`` is then the on_complete job's id."""

    id: int
    total: int
    completed: int
    failed: int
    cancelled: int
    sealed: bool
    callback_id: int | None
    created_at: dt.datetime
    finished_at: dt.datetime | None
    member_ids: list[int] = msgspec.field(default_factory=list)  # those this call added

    @property
    def done(self) -> int:
        return self.completed + self.failed + self.cancelled


class KindStats(msgspec.Struct, frozen=True, kw_only=True):
    kind: str
    counts: dict[str, int]  # state -> number of jobs


class WorkerInfo(msgspec.Struct, frozen=True, kw_only=True):
    """A live worker, as registered in the workers table (times are the database's)."""

    id: str  # as in Job.locked_by
    hostname: str
    pid: int
    kinds: list[str]  # the kinds it has handlers for
    started_at: dt.datetime
    last_seen_at: dt.datetime


class KindFlow(msgspec.Struct, frozen=True, kw_only=True):
    """One kind's flow settings and what runs under them (``Queue.limits()``)."""

    kind: str
    concurrency: int | None = None
    key_concurrency: int | None = None
    rate_limit: tuple[int, float] | None = None
    paused: bool = False
    max_depth: int | None = None
    running: int = 0  # running jobs of the kind, all workers
    running_keys: int = 0  # distinct concurrency keys among them
    busiest_key_running: int = 0  # running jobs of the key with the most
    throttled: int = 0  # due jobs held back (counted up to 10001)
    key_rate_limit: tuple[int, float] | None = None  # (starts, seconds) per concurrency_key


class FlowStatus(msgspec.Struct, frozen=True, kw_only=True):
    """``Queue.limits()``: the kinds with flow settings; the paused queue names."""

    kinds: list[KindFlow]
    paused_queues: list[str]


class Stats(msgspec.Struct, frozen=True, kw_only=True):
    """``Queue.stats()``: a snapshot for dashboards and ``aioqueue status``."""

    kinds: list[KindStats]
    totals: dict[str, int]  # state -> number of jobs
    oldest_due: dt.datetime | None  # run_at of the longest-waiting due job
    due: int  # queue depth: jobs whose run_at has passed, waiting for a worker
    throughput: float  # completions per second over the last minute
    notify_queue_usage: float  # pg_notification_queue_usage(), 0..1
    oldest_transaction_seconds: float | None  # in this database (pins vacuum when high)
    # workers seen within config.WORKER_LIVE_WINDOW
    workers: list[WorkerInfo] = msgspec.field(default_factory=list)
    # kind -> due jobs (pending, or scheduled and due) that no live worker has a handler for
    unhandled_kinds: dict[str, int] = msgspec.field(default_factory=dict)
    # flow control (issue 20): limits, running per kind/key, paused kinds and queues, held back
    flow: FlowStatus | None = None


class HistoryPoint(msgspec.Struct, frozen=True, kw_only=True):
    """Jobs that finished in one minute (``Queue.history()``)."""

    minute: dt.datetime
    completed: int
    failed: int
