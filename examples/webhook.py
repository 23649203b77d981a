"""A Stripe-style webhook receiver (Starlette): acknowledge at once, process in a job, and turn
the redeliveries of an event into that one job.

    python examples/webhook.py          # serves http://127.0.0.1:8000 (PORT=... to change)

    curl -X POST localhost:8000/webhooks/stripe \\
         -d '{"id": "evt_1", "type": "invoice.paid", "data": {"object": {"id": "in_1"}}}'
    # {"job_id": 1, "deduped": false}    ... and the same request again:
    # {"job_id": 1, "deduped": true}

Webhook providers deliver at least once: when our answer is slow, lost or a 5xx, the same event
comes again (Stripe retries for up to 3 days). So the endpoint only checks the request and
enqueues it, keyed by the event id, and answers 200 within milliseconds; the work happens in the
worker pool, with retries. The event id as `unique_key` turns every redelivery into the same job.

Set STRIPE_WEBHOOK_SECRET to verify the `Stripe-Signature` header (unset: no check, for trying
it out locally only). Jobs live in the schema $AIOQUEUE_SCHEMA (default "aioqueue").
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import os
import time
from collections.abc import AsyncIterator
from typing import Any

import msgspec
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

import aioqueue

SCHEMA = os.environ.get("AIOQUEUE_SCHEMA", "aioqueue")
WEBHOOK_SECRET = os.environ.get("STRIPE_WEBHOOK_SECRET", "")
SIGNATURE_TOLERANCE = 300  # seconds: older signed requests are refused (replays)
# Keep finished jobs as long as the provider redelivers (Stripe: 3 days), to look an event's job
# up when its provider asks.
RETENTION = 4 * 24 * 3600


class StripeEvent(msgspec.Struct):
    """The part of a Stripe event we use (unknown fields are dropped, missing ones refused)."""

    id: str
    type: str
    data: dict[str, Any]
    created: int = 0


# -- the job --------------------------------------------------------------------------------------

tasks = aioqueue.Tasks()


@tasks.task("stripe.event", max_attempts=10, timeout=60)
async def handle_stripe_event(ctx: aioqueue.JobContext, event: StripeEvent) -> dict[str, Any]:
    """Runs in the worker pool. Raising retries later (exponential backoff): make each branch
    idempotent, since an attempt may have done part of its work before it failed."""
    obj = event.data.get("object", {})
    if event.type == "invoice.paid":
        ctx.log.info("invoice %s paid: %s", obj.get("id"), obj.get("amount_paid"))
        # ... mark the invoice paid in your database ...
        return {"handled": event.type, "invoice": obj.get("id")}
    if event.type == "customer.subscription.deleted":
        # ... revoke access ...
        return {"handled": event.type, "subscription": obj.get("id")}
    return {"ignored": event.type}  # subscribed to more types than we handle: fine


# -- the endpoint ---------------------------------------------------------------------------------


def signature_ok(body: bytes, header: str, secret: str, *, now: float | None = None) -> bool:
    """Stripe's scheme: header `t=<unix time>,v1=<hex HMAC-SHA256 of "<t>.<body>">` (several v1
    entries while a secret is being rolled)."""
    items = [part.split("=", 1) for part in header.split(",") if "=" in part]
    timestamps = [value for key, value in items if key == "t"]
    if len(timestamps) != 1 or not timestamps[0].isdigit():
        return False
    if abs((time.time() if now is None else now) - int(timestamps[0])) > SIGNATURE_TOLERANCE:
        return False
    signed = timestamps[0].encode() + b"." + body
    expected = hmac.new(secret.encode(), signed, hashlib.sha256).hexdigest()
    return any(key == "v1" and hmac.compare_digest(value, expected) for key, value in items)


async def stripe_webhook(request: Request) -> JSONResponse:
    body = await request.body()
    if WEBHOOK_SECRET and not signature_ok(
        body, request.headers.get("stripe-signature", ""), WEBHOOK_SECRET
    ):
        return JSONResponse({"error": "invalid signature"}, status_code=400)
    try:
        event = msgspec.json.decode(body, type=StripeEvent)
    except msgspec.DecodeError as exc:  # also a ValidationError: names the bad field
        return JSONResponse({"error": f"not a Stripe event: {exc}"}, status_code=400)

    queue: aioqueue.Queue = request.app.state.queue
    # unique_key=event id: a redelivery returns the event's existing job (deduped=True).
    # on_conflict="unsafe_dedupe" also matches a job that failed for good (the default "ignore"
    # only matches waiting or running jobs): a redelivery does not re-run it behind the
    # operator's back; `aioqueue jobs retry ID` does. As in graphile-worker, a completed job does
    # not count: an event redelivered after its job completed runs again, so the handler is
    # idempotent (it must be anyway: delivery is at least once).
    job = await queue.enqueue(
        "stripe.event", event, unique_key=event.id, on_conflict="unsafe_dedupe"
    )
    return JSONResponse({"job_id": job.id, "deduped": job.deduped})


@contextlib.asynccontextmanager
async def lifespan(app: Starlette) -> AsyncIterator[None]:
    # $AIOQUEUE_DSN or $DATABASE_URL, else the embedded server; migrations applied on connect
    async with await aioqueue.Queue.connect(schema=SCHEMA) as queue:
        worker = aioqueue.Worker(queue, tasks, concurrency=20, retention=RETENTION)
        worker_task = asyncio.create_task(worker.run())
        app.state.queue = queue
        try:
            yield
        finally:
            await worker.stop(timeout=10)  # running jobs get 10 s; the rest go back to pending
            await worker_task


app = Starlette(
    routes=[Route("/webhooks/stripe", stripe_webhook, methods=["POST"])], lifespan=lifespan
)


if __name__ == "__main__":
    uvicorn.run(app, host="127.0.0.1", port=int(os.environ.get("PORT", "8000")))
