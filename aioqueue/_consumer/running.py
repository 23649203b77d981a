"""RunningJob: the worker's record of one claimed job until its outcome is flushed."""

from __future__ import annotations

import asyncio
from typing import Any, Literal

StopReason = Literal["lease_lost", "cancel_requested"]


class RunningJob:
    __slots__ = ("abandoned", "attempt", "done", "id", "kind", "lease_token", "reason", "task")

    def __init__(self, job_id: int, kind: str, lease_token: Any, attempt: int) -> None:
        self.id = job_id
        self.kind = kind
        self.lease_token = lease_token
        self.attempt = attempt
        self.task: asyncio.Task[None] | None = None
        self.reason: StopReason | None = None
        self.done = False  # the handler returned; the outcome waits for the completer
        self.abandoned = False  # the handler ignored its timeout; its outcome was recorded

    def stop(self, reason: StopReason) -> None:
        """Cancel the handler (no-op once it has returned)."""
        if self.reason is None and not self.done:
            self.reason = reason
            if self.task is not None:
                self.task.cancel()
