"""Wakeups: what a notification on the queue's channel wakes.

    ""  or "released"  a job is due (or was given back): the producer claims
    "t:<epoch>"        a job becomes due then (database time): the producer sets a timer
    "c:<id>"           a running job's cancellation was requested: the heartbeat beats now

Anyone who can connect may NOTIFY on the channel, so a payload is only ever a hint: the
heartbeat asks the database which jobs to cancel, and a bad time is ignored.
"""

from __future__ import annotations

import contextlib
import math

from .._notifier import Notifier
from .heartbeat import Heartbeat
from .producer import Producer


class Wakeups:
    def __init__(self, producer: Producer, heartbeat: Heartbeat) -> None:
        self._producer = producer
        self._heartbeat = heartbeat
        self.notifier: Notifier | None = None  # it knows how far this host's clock is off

    def producer_wake(self) -> None:
        """The LISTEN connection is back: notifications may have been missed."""
        self._producer.wake()

    def __call__(self, payload: str) -> None:
        if not payload or payload == "released":
            self._producer.wake()
        elif payload.startswith("t:"):
            with contextlib.suppress(ValueError):
                epoch = float(payload[2:])
                # a spoofed 't:nan' must not disable the timer
                if math.isfinite(epoch) and self.notifier is not None:
                    # the hint is in database time; this host's clock may be off
                    self._producer.wake_at(epoch - self.notifier.clock_offset)
        elif payload.startswith("c:"):
            self._heartbeat.poke()
