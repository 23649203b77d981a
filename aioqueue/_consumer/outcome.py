"""Outcome: what the executor decided about one attempt, waiting to be flushed."""

from __future__ import annotations

from typing import Literal

import msgspec

OutcomeState = Literal["completed", "scheduled", "failed", "pending", "cancelled"]


class Outcome(msgspec.Struct, kw_only=True):
    id: int
    lease_token: int  # the claim's token (its transaction id)
    kind: str
    attempt: int
    state: OutcomeState
    result: str | None = None  # JSON
    error: str | None = None  # JSON
    payload: str | None = None  # JSON replacing the payload (batch jobs: the failed items)
    delay: float | None = None  # seconds until run_at (scheduled / pending)
    give_back: bool = False  # the attempt is not counted (graceful-stop release)
    duration: float | None = None
