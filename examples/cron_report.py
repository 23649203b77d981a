"""Recurring jobs: a daily report at 07:00 Paris time, and a metrics snapshot every second.

    python examples/cron_report.py             # a worker running both crons; Ctrl-C stops it
    python examples/cron_report.py --runs 3    # ... or stop after 3 snapshots

The crons are declared next to the tasks, and every worker runs the scheduler: start as many
workers as you like (or `aioqueue worker examples.cron_report:tasks`), each slot is still
enqueued exactly once, by the database. A slot missed while no worker ran is enqueued at the next
start if it is within the cron's `backfill` window (here: a report missed at 07:00 still goes out
if a worker starts before 13:00); older ones are skipped.

Jobs live in the schema $AIOQUEUE_SCHEMA (default "aioqueue"); the database is $AIOQUEUE_DSN,
else the embedded server.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import logging
import os
import signal
from typing import Any
from zoneinfo import ZoneInfo

import aioqueue

SCHEMA = os.environ.get("AIOQUEUE_SCHEMA", "aioqueue")
PARIS = ZoneInfo("Europe/Paris")

tasks = aioqueue.Tasks()

# 5 fields: minute hour day month weekday, in `timezone` (DST-aware: always 07:00 local time)
tasks.cron(
    "0 7 * * *",
    "report.daily",
    payload={"report": "signups"},
    name="daily-signups-report",
    timezone="Europe/Paris",
    backfill=6 * 3600,
)
# 6 fields: the sixth is seconds (here: every second)
tasks.cron("* * * * * *", "metrics.snapshot", name="metrics-snapshot")


@tasks.task("report.daily", max_attempts=3, timeout=600)
async def daily_report(ctx: aioqueue.JobContext, payload: dict[str, Any]) -> dict[str, Any]:
    # The day comes from the slot (the job's run_at), not from the clock: a backfilled or retried
    # report still covers the right day.
    day = ctx.job.run_at.astimezone(PARIS).date() - dt.timedelta(days=1)
    ctx.log.info("building the %s report for %s", payload["report"], day)
    # ... query yesterday's data, render it, email it ...
    return {"report": payload["report"], "day": day.isoformat()}


@tasks.task("metrics.snapshot", max_attempts=1)
async def metrics_snapshot(ctx: aioqueue.JobContext, payload: Any) -> dict[str, Any]:
    q: aioqueue.Queue = ctx.state["queue"]
    stats = await q.stats()
    waiting = stats.totals["pending"] + stats.totals["scheduled"]
    # ... push to your metrics system ...
    ctx.log.info("queue: %d waiting, %.1f jobs/s", waiting, stats.throughput)
    return {"waiting": waiting, "completed": stats.totals["completed"]}


async def main(runs: int | None) -> None:
    async with await aioqueue.Queue.connect(schema=SCHEMA) as q:
        stop = asyncio.Event()
        snapshots = 0

        def on_event(event: aioqueue.Event) -> None:
            nonlocal snapshots
            if event.type == "completed" and event.kind == "metrics.snapshot":
                snapshots += 1
                print(f"snapshot {snapshots} done (job {event.job_id})", flush=True)
                if runs is not None and snapshots >= runs:
                    stop.set()

        worker = aioqueue.Worker(q, tasks, state={"queue": q}, hooks=[on_event])
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(signum, stop.set)  # Ctrl-C: a graceful stop
        running = asyncio.create_task(worker.run())
        print(f"worker running {len(tasks.crons)} crons (Ctrl-C to stop)", flush=True)
        stopping = asyncio.create_task(stop.wait())
        # until a signal (or --runs), or until the worker itself fails
        await asyncio.wait({running, stopping}, return_when=asyncio.FIRST_COMPLETED)
        stopping.cancel()
        await worker.stop(timeout=30)
        await running  # raises the worker's error, if it failed
        print("worker stopped")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--runs", type=int, help="stop after this many snapshots")
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    asyncio.run(main(parser.parse_args().runs))
