"""RunningJob: the worker's record of one claimed job until its outcome is flushed."""

from __future__ import annotations

import asyncio
import time
from typing import Any, Literal

StopReason = Literal["lease_lost", "cancel_requested"]


def lease_margin(lease: float) -> float:
    """How much earlier than the database the worker treats a lease as over (clock rates and
    the round trip): a tenth of the lease, at most a second."""
    return min(lease / 10, 1.0)


class RunningJob:
    __slots__ = (
        "abandoned",
        "attempt",
        "claimed_at",
        "deadline",
        "done",
        "duration",
        "id",
        "kind",
        "lease_token",
        "reason",
        "task",
    )

    def __init__(
        self,
        job_id: int,
        kind: str,
        lease_token: Any,
        attempt: int,
        *,
        claimed_at: float = 0.0,
        deadline: float = float("inf"),
    ) -> None:
        self.id = job_id
        self.kind = kind
        self.lease_token = lease_token
        self.attempt = attempt
        self.task: asyncio.Task[None] | None = None
        self.reason: StopReason | None = None
        self.done = False  # the handler returned; the outcome waits for the completer
        self.abandoned = False  # the handler ignored its timeout; its outcome was recorded
        self.duration = 0.0  # how long the handler ran (0 if it never started)
        # time.monotonic() values: when the claim was sent, and until when the lease is known
        # to hold (the claim's or the last confirming heartbeat's send time, plus the lease,
        # less a margin). The database's clock is not consulted: a stalled loop cannot tell.
        self.claimed_at = claimed_at
        self.deadline = deadline

    def expired(self) -> bool:
        """True once the lease may have run out (e.g. the event loop was stopped longer than
        the lease): such a job must not start, another worker may be running it."""
        return time.monotonic() >= self.deadline

    def stop(self, reason: StopReason) -> None:
        """Cancel the handler (no-op once it has returned)."""
        if self.reason is None and not self.done:
            self.reason = reason
            if self.task is not None:
                self.task.cancel()
