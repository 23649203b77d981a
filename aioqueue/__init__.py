"""aioqueue: an asyncio-native job queue backed by PostgreSQL and nothing else."""

from ._handle import TaskHandle
from .context import Cancel, Fail, HandlerOutcome, JobContext, JobInfo, Snooze
from .errors import (
    AioqueueError,
    ConfigurationError,
    DatabaseUnavailable,
    InvalidJobError,
    JobNotFound,
    JobStateError,
    PayloadEncodeError,
    PayloadError,
    PayloadTooLarge,
    PayloadValidationError,
    PayloadValueError,
    QueueFull,
    SchemaError,
    SchemaNotInstalled,
    SchemaOutdated,
    UnknownTaskError,
    WaitTimeout,
)
from .events import Event, Hooks
from .queue import Queue
from .tasks import Task, Tasks
from .types import (
    EnqueueResult,
    FlowStatus,
    Job,
    JobError,
    JobSpec,
    JobState,
    KindFlow,
    OnConflict,
)
from .worker import Worker, WorkerConfig

__version__ = "0.1.0"

__all__ = [
    "AioqueueError",
    "Cancel",
    "ConfigurationError",
    "DatabaseUnavailable",
    "EnqueueResult",
    "Event",
    "Fail",
    "FlowStatus",
    "HandlerOutcome",
    "Hooks",
    "InvalidJobError",
    "Job",
    "JobContext",
    "JobError",
    "JobInfo",
    "JobNotFound",
    "JobSpec",
    "JobState",
    "JobStateError",
    "KindFlow",
    "OnConflict",
    "PayloadEncodeError",
    "PayloadError",
    "PayloadTooLarge",
    "PayloadValidationError",
    "PayloadValueError",
    "Queue",
    "QueueFull",
    "SchemaError",
    "SchemaNotInstalled",
    "SchemaOutdated",
    "Snooze",
    "Task",
    "TaskHandle",
    "Tasks",
    "UnknownTaskError",
    "WaitTimeout",
    "Worker",
    "WorkerConfig",
    "__version__",
]
