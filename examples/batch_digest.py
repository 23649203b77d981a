"""Batch jobs with a debounce: a burst of events becomes ONE job per user, and one digest email.

    python examples/batch_digest.py

Every event enqueues `notify.digest` with the same unique key per user, `on_conflict="replace"`
and a one-item list as payload:

- no digest is waiting for that user: a new job, due in DEBOUNCE seconds;
- one is waiting: the event is APPENDED to its payload list and its run_at moves to
  now + DEBOUNCE, but never later than its first enqueue + MAX_WAIT (`max_delay`), so a user
  with a steady stream of events still gets a digest every MAX_WAIT seconds;
- one is already running: the key is released and the event starts the next digest.

The handler receives the whole list. Jobs live in the schema $AIOQUEUE_SCHEMA (default
"aioqueue"); the database is $AIOQUEUE_DSN, else the embedded server.
"""

from __future__ import annotations

import asyncio
import os
from collections import Counter

import msgspec

import aioqueue

SCHEMA = os.environ.get("AIOQUEUE_SCHEMA", "aioqueue")
DEBOUNCE = 1.0  # seconds of quiet before a digest goes out (minutes, in a real app)
MAX_WAIT = 5.0  # ... but at most this long after the first event of the digest


class Activity(msgspec.Struct):
    type: str  # "like", "comment", "follow"
    actor: str
    post_id: int | None = None


async def record_activity(
    q: aioqueue.Queue,
    user_id: int,
    activity: Activity,
    *,
    delay: float = DEBOUNCE,
    max_delay: float = MAX_WAIT,
) -> aioqueue.EnqueueResult:
    """Called wherever an event happens (a request handler, another job...)."""
    return await q.enqueue(
        "notify.digest",
        [activity],  # a list: replace appends it to the waiting job's list
        unique_key=f"digest:user:{user_id}",
        on_conflict="replace",
        delay=delay,
        max_delay=max_delay,
    )


tasks = aioqueue.Tasks()


@tasks.task("notify.digest", max_attempts=5)
async def send_digest(ctx: aioqueue.JobContext, activities: list[Activity]) -> dict[str, object]:
    counts = Counter(a.type for a in activities)
    text = ", ".join(f"{n} new {kind}{'s' if n > 1 else ''}" for kind, n in sorted(counts.items()))
    ctx.log.info("digest for %s: %s", ctx.job.unique_key, text)
    # ... send one email or push notification with `text` here ...
    # Return a summary, not a list: a list as long as the payload is read as per-item outcomes
    # (exceptions in it retry only the failed items).
    return {"user": ctx.job.unique_key, "events": len(activities), "text": text}


async def main() -> None:
    async with await aioqueue.Queue.connect(schema=SCHEMA) as q:
        burst = [
            (7, Activity("like", "ana", post_id=1)),
            (7, Activity("comment", "ben", post_id=1)),
            (8, Activity("follow", "eve")),
            (7, Activity("like", "carl", post_id=2)),
            (7, Activity("follow", "dan")),
        ]
        job_ids: set[int] = set()
        for user_id, activity in burst:
            job = await record_activity(q, user_id, activity)
            job_ids.add(job.id)
        print(f"{len(burst)} events -> {len(job_ids)} digest jobs")

        # A worker pool, as the app (or `aioqueue worker`) would run it. The digests are not due
        # yet: the worker sleeps until their run_at and then runs each one once.
        worker = aioqueue.Worker(q, tasks)
        running = asyncio.create_task(worker.run())
        for job_id in sorted(job_ids):
            done = await q.wait(job_id, timeout=MAX_WAIT + 30)
            print(f"{done.result['user']}: {done.result['text']}")
        await worker.stop()
        await running


if __name__ == "__main__":
    asyncio.run(main())
