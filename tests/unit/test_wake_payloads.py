"""The wake-up payloads are parsed in one place (aioqueue/_wake.py) and never trusted: anyone
who can connect may NOTIFY on the channel."""

from __future__ import annotations

import math

import pytest

from aioqueue import _wake


@pytest.mark.parametrize(
    ("payload", "kind"),
    [
        ("", "due"),
        ("f", "finished"),
        ("p", "progress"),
        ("c:1,2,3", "cancel"),
        ("c:", "cancel"),  # the heartbeat asks the database which jobs: ids are not read
        ("t:1700000000.25", "timer"),
        ("t:nan", "unknown"),  # a spoofed hint must not disable the worker's timer
        ("t:inf", "unknown"),
        ("t:-inf", "unknown"),
        ("t:soon", "unknown"),
        ("released", "unknown"),
        ("F", "unknown"),
        ("x" * 7999, "unknown"),
    ],
)
def test_parse(payload: str, kind: str) -> None:
    assert _wake.parse(payload).kind == kind


def test_timer_carries_its_epoch() -> None:
    wake = _wake.parse("t:1700000000.25")
    assert wake.epoch == 1700000000.25
    assert math.isnan(_wake.parse("").epoch)
