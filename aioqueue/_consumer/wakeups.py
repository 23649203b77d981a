"""Wakeups: what a notification on the queue's channel wakes (payload formats: ``_wake``).

Anyone who can connect may NOTIFY on the channel, so a payload is only ever a hint: the
heartbeat asks the database which jobs to cancel, and a bad time is ignored.
"""

from __future__ import annotations

from .. import _wake
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
        wake = _wake.parse(payload)
        if wake.kind == "due":
            self._producer.wake()
        elif wake.kind == "timer" and self.notifier is not None:
            # the hint is in database time; this host's clock may be off
            self._producer.wake_at(wake.epoch - self.notifier.clock_offset)
        elif wake.kind == "cancel":
            self._heartbeat.poke()
