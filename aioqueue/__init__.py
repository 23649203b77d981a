"""aioqueue: an asyncio-native job queue backed by PostgreSQL and nothing else."""

from .errors import (
    AioqueueError,
    ConfigurationError,
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
from .queue import Queue
from .types import EnqueueResult, Job, JobError, JobSpec, JobState, OnConflict

__version__ = "0.1.0"

__all__ = [
    "AioqueueError",
    "ConfigurationError",
    "EnqueueResult",
    "InvalidJobError",
    "Job",
    "JobError",
    "JobNotFound",
    "JobSpec",
    "JobState",
    "JobStateError",
    "OnConflict",
    "PayloadEncodeError",
    "PayloadError",
    "PayloadTooLarge",
    "PayloadValidationError",
    "PayloadValueError",
    "Queue",
    "SchemaError",
    "SchemaNotInstalled",
    "SchemaOutdated",
    "UnknownTaskError",
    "WaitTimeout",
    "__version__",
]

for _name in __all__:
    _obj = globals()[_name]
    if hasattr(_obj, "__module__") and not isinstance(_obj, str):
        try:
            _obj.__module__ = "aioqueue"
        except (AttributeError, TypeError):
            pass
