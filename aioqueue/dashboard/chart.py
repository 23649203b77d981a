"""Throughput over time as SVG bars, computed here so the page needs no JavaScript."""

from __future__ import annotations

import msgspec

from ..types import HistoryPoint

WIDTH = 600
HEIGHT = 120


class Bar(msgspec.Struct, frozen=True):
    x: float
    width: float
    completed_y: float
    completed_height: float
    failed_y: float
    failed_height: float
    label: str


class Chart(msgspec.Struct, frozen=True):
    width: int
    height: int
    peak: int
    bars: list[Bar]
    first: str
    last: str


def bars(history: list[HistoryPoint]) -> Chart:
    """One stacked bar per minute: completed (bottom) and failed (on top)."""
    peak = max((p.completed + p.failed for p in history), default=0)
    slot = WIDTH / max(len(history), 1)
    scale = HEIGHT / peak if peak else 0.0
    out = []
    for i, p in enumerate(history):
        done_h = p.completed * scale
        failed_h = p.failed * scale
        out.append(
            Bar(
                x=round(i * slot + 1, 1),
                width=round(max(slot - 2, 1), 1),
                completed_y=round(HEIGHT - done_h, 1),
                completed_height=round(done_h, 1),
                failed_y=round(HEIGHT - done_h - failed_h, 1),
                failed_height=round(failed_h, 1),
                label=f"{p.minute:%H:%M} UTC: {p.completed} completed, {p.failed} failed",
            )
        )
    return Chart(
        width=WIDTH,
        height=HEIGHT,
        peak=peak,
        bars=out,
        first=f"{history[0].minute:%H:%M}" if history else "",
        last=f"{history[-1].minute:%H:%M}" if history else "",
    )
