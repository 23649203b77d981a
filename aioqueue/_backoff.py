"""Pure: retry delays. Default like graphile-worker: exp(min(attempts, 10)) seconds, jittered."""

from __future__ import annotations

import math
import random
from collections.abc import Callable

JITTER = 0.1  # +-10 %, so a burst of failures does not retry in lockstep

RetryDelay = float | int | Callable[[int], float] | None


def default_delay(attempts: int, *, rng: Callable[[], float] = random.random) -> float:
    """Seconds before the next try after ``attempts`` attempts (1 → ~2.7 s, 10+ → ~6 h)."""
    base = math.exp(min(max(attempts, 1), 10))
    return base * (1 - JITTER + 2 * JITTER * rng())


def retry_delay(policy: RetryDelay, attempts: int) -> float:
    """Apply a task's ``retry_delay``: None (default backoff), fixed seconds, or a callable."""
    if policy is None:
        return default_delay(attempts)
    value = float(policy(attempts)) if callable(policy) else float(policy)
    if not math.isfinite(value) or value < 0:
        raise ValueError(f"retry_delay gave {value!r}; it must be a finite number >= 0")
    return value
