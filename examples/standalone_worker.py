"""Handlers run by the `aioqueue worker` command, and a producer that enqueues a batch for them.

From the repository root (the CLI imports MODULE:TASKS with the current directory on the path):

    aioqueue worker examples.standalone_worker:tasks --processes 2   # terminal 1: the workers
    python examples/standalone_worker.py 200                         # terminal 2: enqueue 200 jobs
    aioqueue status                                                  # counts per kind and state

`--processes N` starts N worker processes, each with its own event loop and connection pool (one
process uses one CPU core; jobs that burn CPU belong in more processes, or in threads with
`asyncio.to_thread`). SIGTERM or Ctrl-C stops them gracefully: no new claims, running jobs get
`--stop-timeout` seconds to finish, and jobs still running after that go back to `pending`.

The database is $AIOQUEUE_DSN (the CLI reads it too), else the embedded server. The producer
uses the schema $AIOQUEUE_SCHEMA (default "aioqueue"); the CLI takes it as an option, before the
subcommand: `aioqueue --schema NAME worker ...`.
"""

from __future__ import annotations

import argparse
import asyncio
import os
from typing import Any

import aioqueue

SCHEMA = os.environ.get("AIOQUEUE_SCHEMA", "aioqueue")

# The registry the CLI loads. Importing this module must stay free of side effects: every worker
# process imports it.
tasks = aioqueue.Tasks()


@tasks.task("image.resize", max_attempts=5, timeout=60)
async def resize_image(ctx: aioqueue.JobContext, payload: dict[str, Any]) -> dict[str, Any]:
    await asyncio.sleep(0.01)  # stands for I/O: fetching the image, calling a resize service...
    return {"image_id": payload["image_id"], "width": payload.get("width", 256), "pid": os.getpid()}


@tasks.task("email.send", max_attempts=10, timeout=30)
async def send_email(ctx: aioqueue.JobContext, payload: dict[str, Any]) -> dict[str, Any]:
    ctx.log.info("sending %r to %s", payload["subject"], payload["to"])
    await asyncio.sleep(0.01)  # stands for the email provider's API call
    return {"to": payload["to"], "pid": os.getpid()}


def batch(count: int) -> list[aioqueue.JobSpec]:
    """Thumbnails for `count` images, and a "done" email for every 50 of them."""
    specs = [aioqueue.JobSpec(kind="image.resize", payload={"image_id": i}) for i in range(count)]
    specs += [
        aioqueue.JobSpec(
            kind="email.send",
            payload={"to": "ops@example.com", "subject": f"images {i}-{min(i + 50, count) - 1}"},
            priority=-1,  # after the images (higher priority runs sooner)
        )
        for i in range(0, count, 50)
    ]
    return specs


async def enqueue_batch(count: int) -> list[int]:
    async with await aioqueue.Queue.connect(schema=SCHEMA) as q:
        outcomes = await q.enqueue_many(batch(count))  # one round trip, whatever the count
        return [o.id for o in outcomes]


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description="Enqueue a batch of jobs for the workers.")
    parser.add_argument("count", type=int, nargs="?", default=100, help="images (default 100)")
    count = parser.parse_args().count
    if count < 1:
        parser.error("count must be at least 1")
    ids = asyncio.run(enqueue_batch(count))
    print(f"enqueued {len(ids)} jobs (ids {ids[0]}..{ids[-1]})")
