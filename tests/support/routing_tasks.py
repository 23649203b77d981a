"""Two no-op kinds for the CLI worker's routing test (--kinds / --exclude)."""

from __future__ import annotations

from typing import Any

import aioqueue

tasks = aioqueue.Tasks()


@tasks.task("mail")
async def mail(ctx: aioqueue.JobContext, payload: Any) -> None:
    return None


@tasks.task("report")
async def report(ctx: aioqueue.JobContext, payload: Any) -> None:
    return None
