"""The payloads of the wake-up notifications, in one place. SQL sends them through
``notify_workers(payload)`` (migration 0012); workers and ``Queue.wait`` read them here.

Payloads are hints, never trusted: anyone who can connect may NOTIFY on the channel.

- ``''``: work is due now (claim).
- ``'t:<epoch>'``: the earliest future run_at just written, in database time.
- ``'c:<id>,<id>...'``: running jobs were asked to stop (the heartbeat asks the database which).
- ``'f'``: a waited-for job (or a group) reached a final state.
- ``'p'``: a waited-for job reported progress.
"""

from __future__ import annotations

import math
from typing import Literal, NamedTuple

DUE = ""
FINISHED = "f"
PROGRESS = "p"
TIMER_PREFIX = "t:"
CANCEL_PREFIX = "c:"

Kind = Literal["due", "timer", "cancel", "finished", "progress", "unknown"]


class Wake(NamedTuple):
    kind: Kind
    epoch: float = math.nan  # "timer": when, in the database's clock


def parse(payload: str) -> Wake:
    if payload == DUE:
        return Wake("due")
    if payload == FINISHED:
        return Wake("finished")
    if payload == PROGRESS:
        return Wake("progress")
    if payload.startswith(TIMER_PREFIX):
        try:
            epoch = float(payload[len(TIMER_PREFIX) :])
        except ValueError:
            return Wake("unknown")
        # a spoofed 't:nan' or 't:inf' must not disable the timer
        return Wake("timer", epoch) if math.isfinite(epoch) else Wake("unknown")
    if payload.startswith(CANCEL_PREFIX):
        return Wake("cancel")
    return Wake("unknown")
