"""Tasks run by worker subprocesses in the workflow tests. The group callback records the
outcome counts it was given in a table, through its own connection."""

from __future__ import annotations

import os
from typing import Any

import anyio
import asyncpg

import aioqueue

tasks = aioqueue.Tasks()


@tasks.task("member", max_attempts=3)  # a killed worker's jobs run again
async def member(ctx: aioqueue.JobContext, payload: dict[str, Any]) -> int:
    await anyio.sleep(0.002)
    if payload.get("fail"):
        raise aioqueue.Fail("asked to fail")
    return int(payload["i"])


@tasks.task("group_done")
async def group_done(ctx: aioqueue.JobContext, payload: dict[str, Any]) -> None:
    group = ctx.group
    assert group is not None
    conn = await asyncpg.connect(os.environ["CHAOS_DSN"])
    try:
        await conn.execute(
            f'INSERT INTO "{os.environ["CHAOS_SCHEMA"]}".group_ledger '
            "(job_id, group_id, total, completed, failed, cancelled, pid) "
            "VALUES ($1, $2, $3, $4, $5, $6, $7)",
            ctx.job.id,
            group.id,
            group.total,
            group.completed,
            group.failed,
            group.cancelled,
            os.getpid(),
        )
    finally:
        await conn.close()
