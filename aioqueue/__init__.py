"""aioqueue: an asyncio-native job queue backed by PostgreSQL and nothing else."""

from ._handle import TaskHandle
from .context import Cancel, Fail, HandlerOutcome, JobContext, JobInfo, Snooze
from .errors import (
    AioqueueError,
    ConfigurationError,
    DatabaseUnavailable,
    GroupNotFound,
    InvalidJobError,
    JobNotFound,
    JobStateError,
    PayloadEncodeError,
    PayloadError,
    PayloadTooLarge,
    PayloadValidationError,
    PayloadValueError,
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
    Group,
    GroupOutcome,
    Job,
    JobError,
    JobLink,
    JobSpec,
    JobState,
    OnConflict,
    OnParentFailure,
    Ref,
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
    "Group",
    "GroupNotFound",
    "GroupOutcome",
    "HandlerOutcome",
    "Hooks",
    "InvalidJobError",
    "Job",
    "JobContext",
    "JobError",
    "JobInfo",
    "JobLink",
    "JobNotFound",
    "JobSpec",
    "JobState",
    "JobStateError",
    "OnConflict",
    "OnParentFailure",
    "PayloadEncodeError",
    "PayloadError",
    "PayloadTooLarge",
    "PayloadValidationError",
    "PayloadValueError",
    "Queue",
    "Ref",
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
