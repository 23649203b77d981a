"""Wording shared by ``aioqueue status`` and the dashboard: ages and health warnings."""

from __future__ import annotations

import datetime as dt

from .config import NOTIFY_QUEUE_LIMIT, WORKER_LIVE_WINDOW
from .types import Stats

XACT_WARN_SECONDS = 60.0
UNHANDLED_SHOWN = 10  # kinds named in the warning; --json and the API have them all


def age(when: dt.datetime | None, *, now: dt.datetime | None = None) -> str:
    """``"3.2 s ago"``, ``"in 5 s"``, ``"4 min ago"``: how far ``when`` is from now."""
    if when is None:
        return "-"
    if when.tzinfo is None:  # asyncpg reads 'infinity' / '-infinity' as naive max / min
        return "infinity" if when == dt.datetime.max else "-infinity"
    seconds = ((now or dt.datetime.now(dt.UTC)) - when).total_seconds()
    if seconds < 0:
        return f"in {-seconds:.0f} s"
    if seconds < 120:
        return f"{seconds:.1f} s ago"
    if seconds < 7200:
        return f"{seconds / 60:.0f} min ago"
    return f"{seconds / 3600:.1f} h ago"


def warnings_for(stats: Stats) -> list[str]:
    """Conditions an operator must act on, in plain words."""
    out = []
    if stats.notify_queue_usage >= NOTIFY_QUEUE_LIMIT:
        out.append(
            f"notification queue {stats.notify_queue_usage:.0%} full: a listener is stuck; "
            f"aioqueue skips NOTIFY above {NOTIFY_QUEUE_LIMIT:.0%} and workers fall back to "
            "polling"
        )
    if (stats.oldest_transaction_seconds or 0) >= XACT_WARN_SECONDS:
        out.append(
            f"a transaction has been open for {stats.oldest_transaction_seconds:.0f} s: it pins "
            "the vacuum horizon, so dead job rows pile up and claims slow down"
        )
    unhandled = _unhandled(stats)
    if unhandled:
        out.append(unhandled)
    return out


def _unhandled(stats: Stats) -> str | None:
    """Due jobs that nothing will claim: no live worker has a handler for their kind."""
    if not stats.unhandled_kinds:
        return None
    if not stats.workers:
        due = sum(stats.unhandled_kinds.values())
        return (
            f"no live worker (none seen in the last {WORKER_LIVE_WINDOW:.0f} s): no registered "
            f"handler for any kind; {due} due {'job waits' if due == 1 else 'jobs wait'}"
        )
    shown = [f"{k} ({n} due)" for k, n in list(stats.unhandled_kinds.items())[:UNHANDLED_SHOWN]]
    more = len(stats.unhandled_kinds) - len(shown)
    return (
        "no registered handler on any live worker for "
        + ", ".join(shown)
        + (f" and {more} more kinds" if more else "")
        + ": these jobs wait until a worker with their handler starts"
    )
