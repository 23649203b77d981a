"""Pure: cron expressions (croniter) → time slots, timezone- and DST-aware."""

from __future__ import annotations

import datetime as dt
from functools import cache
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from .errors import ConfigurationError

MAX_SLOTS = 10_000  # a guard against pathological windows (e.g. every second for a year)


@cache
def _croniter() -> Any:
    """croniter (and dateutil under it) on first use: a worker or a web app without crons does
    not pay its ~25 ms import at start-up."""
    from croniter import croniter

    return croniter


def validate(expr: str) -> None:
    if not isinstance(expr, str) or not _croniter().is_valid(expr):
        raise ConfigurationError(f"invalid cron expression {expr!r}")


def zone(name: str) -> ZoneInfo:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise ConfigurationError(f"unknown timezone {name!r}") from exc


def slots_between(
    expr: str, tz: ZoneInfo, after: dt.datetime, until: dt.datetime
) -> list[dt.datetime]:
    """Slots s with after < s <= until, in UTC. Local wall-clock times follow ``tz`` (DST)."""
    it = _croniter()(expr, after.astimezone(tz))
    out: list[dt.datetime] = []
    while len(out) < MAX_SLOTS:
        slot: dt.datetime = it.get_next(dt.datetime)
        if slot > until:
            break
        out.append(slot.astimezone(dt.UTC))
    return out


def next_slot(expr: str, tz: ZoneInfo, after: dt.datetime) -> dt.datetime:
    slot: dt.datetime = _croniter()(expr, after.astimezone(tz)).get_next(dt.datetime)
    return slot.astimezone(dt.UTC)
