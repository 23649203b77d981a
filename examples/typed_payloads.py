"""Typed payloads: msgspec Structs validate every job's payload before its handler runs.

    python examples/typed_payloads.py

Annotate a handler's payload with a msgspec Struct (or any type msgspec handles: unions of tagged
Structs, list[Struct], `Annotated` constraints...). The worker decodes the job's JSON into that
type; a payload that does not match fails the job for good (no retries: it would never match),
with msgspec's message naming the JSON path (never the value: for a Literal, enum or tag that
does not match, aioqueue cuts out the value msgspec quotes).

Producers can enqueue the Struct itself. Jobs enqueued by other means (another service, the
CLI, SQL's add_job) are plain JSON: that is what the annotation protects the handler from.

Jobs live in the schema $AIOQUEUE_SCHEMA (default "aioqueue"); the database is $AIOQUEUE_DSN,
else the embedded server.
"""

from __future__ import annotations

import asyncio
import os
from typing import Annotated, Literal

import msgspec

import aioqueue

SCHEMA = os.environ.get("AIOQUEUE_SCHEMA", "aioqueue")


class Thumbnail(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    image_id: int
    width: Annotated[int, msgspec.Meta(gt=0, le=4096)]
    format: Literal["webp", "jpeg", "png"] = "webp"


class Stored(msgspec.Struct):
    """A Struct result is stored as JSON, like a payload."""

    url: str
    width: int


# Tagged union: the "type" field picks the Struct ({"type": "email", ...} or {"type": "sms", ...})
class Email(msgspec.Struct, tag="email"):
    to: str
    subject: str


class Sms(msgspec.Struct, tag="sms"):
    phone: str
    text: Annotated[str, msgspec.Meta(max_length=160)]


tasks = aioqueue.Tasks()


@tasks.task("image.thumbnail", max_attempts=5)
async def make_thumbnail(ctx: aioqueue.JobContext, job: Thumbnail) -> Stored:
    # `job` is a Thumbnail here: fields checked, defaults filled in
    # ... resize the image, upload it ...
    return Stored(
        url=f"https://cdn.example.com/{job.image_id}/{job.width}.{job.format}", width=job.width
    )


@tasks.task("notify.send")
async def send_notification(ctx: aioqueue.JobContext, message: Email | Sms) -> str:
    match message:
        case Email(to=to, subject=subject):
            return f"email to {to}: {subject}"
        case Sms(phone=phone):
            return f"sms to {phone}"


async def main() -> None:
    async with await aioqueue.Queue.connect(schema=SCHEMA) as q:
        ids = [
            # from this app: Structs
            (await q.enqueue("image.thumbnail", Thumbnail(image_id=1, width=320))).id,
            (await q.enqueue("notify.send", Email(to="ana@example.com", subject="Hi"))).id,
            (await q.enqueue("notify.send", Sms(phone="+33600000000", text="Hi"))).id,
            # from elsewhere: plain JSON, checked by the worker against the same types
            (await q.enqueue("image.thumbnail", {"image_id": 2, "width": 64, "format": "png"})).id,
            (await q.enqueue("image.thumbnail", {"image_id": "3", "width": 64})).id,
            (await q.enqueue("image.thumbnail", {"image_id": 4, "width": 0})).id,
            (await q.enqueue("image.thumbnail", {"image_id": 5, "width": 64, "colour": "red"})).id,
            (await q.enqueue("notify.send", {"type": "fax", "number": "123"})).id,
        ]
        await aioqueue.Worker(q, tasks).run(until_empty=True)
        for job_id in ids:
            job = await q.get_job(job_id)
            outcome = job.result if job.error is None else job.error.message
            print(f"{job.kind} {job.state} after {job.attempts} attempt(s): {outcome}")


if __name__ == "__main__":
    asyncio.run(main())
