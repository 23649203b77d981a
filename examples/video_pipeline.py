"""A workflow: download a video, transcode it into three renditions in parallel, then publish.

    python examples/video_pipeline.py

- `video.download` reports progress (`ctx.progress`); the caller waits with `on_progress=`.
- the three `video.transcode` jobs depend on it (`depends_on`): they are `waiting` until the
  download completes, and read its result with `ctx.parent_results()`. If the download fails
  for good, they are cancelled, with the reason in their error.
- they form a group whose `on_complete` callback, `video.publish`, runs exactly once when all
  three have finished, with the outcome counts in `ctx.group`.
- `meta` carries a request id from the producer to every handler (`ctx.job.meta`).

Jobs live in the schema $AIOQUEUE_SCHEMA (default "aioqueue"); the database is $AIOQUEUE_DSN,
else the embedded server.
"""

from __future__ import annotations

import asyncio
import os
from typing import Any

import aioqueue
from aioqueue import JobSpec

SCHEMA = os.environ.get("AIOQUEUE_SCHEMA", "aioqueue")
RENDITIONS = ("1080p", "720p", "360p")
tasks = aioqueue.Tasks()


@tasks.task("video.download", max_attempts=1)
async def download(ctx: aioqueue.JobContext, payload: dict[str, Any]) -> dict[str, Any]:
    if payload["url"].endswith("missing.mp4"):
        raise aioqueue.Fail("404 Not Found")
    chunks = 4
    for i in range(1, chunks + 1):
        await asyncio.sleep(0.05)  # fetching a chunk
        await ctx.progress(i / chunks, f"chunk {i} of {chunks}")
    return {"path": f"/tmp/{payload['video_id']}.mp4", "chunks": chunks}


@tasks.task("video.transcode")
async def transcode(ctx: aioqueue.JobContext, payload: dict[str, Any]) -> str:
    (source,) = (await ctx.parent_results()).values()
    return f"{source['path']} -> {payload['rendition']}"


@tasks.task("video.publish")
async def publish(ctx: aioqueue.JobContext, payload: dict[str, Any]) -> str:
    group = ctx.group
    assert group is not None
    assert ctx.job.meta is not None
    return (
        f"video {payload['video_id']}: {group.completed} renditions ready, "
        f"{group.cancelled} cancelled (request {ctx.job.meta['request_id']})"
    )


async def start_pipeline(q: aioqueue.Queue, video_id: int, url: str) -> tuple[int, int]:
    """Enqueue the whole graph; returns (download job id, group id)."""
    meta = {"request_id": f"r-{video_id}"}
    fetch = await q.enqueue("video.download", {"video_id": video_id, "url": url}, meta=meta)
    group = await q.enqueue_group(
        [
            JobSpec(
                kind="video.transcode",
                payload={"rendition": r},
                depends_on=[fetch.id],
                meta=meta,
            )
            for r in RENDITIONS
        ],
        on_complete=JobSpec(kind="video.publish", payload={"video_id": video_id}, meta=meta),
    )
    return fetch.id, group.id


async def main() -> None:
    async with await aioqueue.Queue.connect(schema=SCHEMA) as q:
        ok_download, ok_group = await start_pipeline(q, 1, "https://cdn.example.com/1.mp4")
        _, bad_group = await start_pipeline(q, 2, "https://cdn.example.com/missing.mp4")
        worker = aioqueue.Worker(q, tasks, concurrency=4)
        running = asyncio.create_task(worker.run())
        try:
            seen: list[float] = []
            job = await q.wait(
                ok_download, timeout=30, on_progress=lambda j: seen.append(j.progress or 0)
            )
            print(f"download {job.state}: progress {job.progress} ({job.progress_message})")
            for group_id in (ok_group, bad_group):
                group = await q.wait_group(group_id, timeout=30)
                assert group.callback_id is not None
                published = await q.wait(group.callback_id, timeout=30)
                print(published.result)
            transcodes = await q.list_jobs(kind="video.transcode", limit=6)
            for t in sorted(transcodes, key=lambda j: j.id):
                detail = t.result if t.error is None else t.error.message
                print(f"transcode {t.payload['rendition']} {t.state}: {detail}")
        finally:
            await worker.stop(timeout=10)
            await running


if __name__ == "__main__":
    asyncio.run(main())
