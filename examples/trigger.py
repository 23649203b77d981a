"""Jobs enqueued by a database trigger (examples/trigger.sql), run by a Python worker.

    python examples/trigger.py

Installs trigger.sql (an `orders` table whose AFTER INSERT trigger calls `<schema>.add_job`),
inserts orders with plain SQL, as any client would, and lets a worker confirm them. An insert
that is rolled back enqueues nothing.

Jobs live in the schema $AIOQUEUE_SCHEMA (default "aioqueue"); the database is $AIOQUEUE_DSN,
else the embedded server. The `orders` table and its trigger go to the `public` schema.
"""

from __future__ import annotations

import asyncio
import os
import re
from pathlib import Path

import asyncpg
import msgspec

import aioqueue
from aioqueue.config import validate_schema

SCHEMA = os.environ.get("AIOQUEUE_SCHEMA", "aioqueue")
SQL_FILE = Path(__file__).with_name("trigger.sql")


def trigger_sql(schema: str) -> str:
    """trigger.sql, calling add_job in ``schema``: validated first (a plain lower-case
    identifier, else ConfigurationError), then quoted, so no SQL can be smuggled in."""
    validate_schema(schema)
    sql, count = re.subn(r"\baioqueue\.add_job\(", f'"{schema}".add_job(', SQL_FILE.read_text())
    assert count == 1, "trigger.sql should call aioqueue.add_job exactly once"
    return sql


class OrderPlaced(msgspec.Struct):
    """The payload the trigger builds with jsonb_build_object."""

    order_id: int
    email: str
    total_cents: int


tasks = aioqueue.Tasks()


@tasks.task("order.confirm")
async def confirm_order(ctx: aioqueue.JobContext, order: OrderPlaced) -> str:
    # ... email the confirmation to order.email ...
    pool: asyncpg.Pool = ctx.state["pool"]
    await pool.execute(
        "UPDATE orders SET confirmed_at = now() WHERE id = $1 AND confirmed_at IS NULL",
        order.order_id,
    )
    return f"confirmed order {order.order_id} ({order.total_cents / 100:.2f} EUR) to {order.email}"


async def main() -> None:
    # connect() applies aioqueue's migrations: add_job must exist before the trigger is used
    async with await aioqueue.Queue.connect(schema=SCHEMA) as q:
        await q.pool.execute(trigger_sql(SCHEMA))  # idempotent: IF NOT EXISTS / OR REPLACE

        worker = aioqueue.Worker(q, tasks, state={"pool": q.pool})
        running = asyncio.create_task(worker.run())

        # Any client, any language: here a plain asyncpg connection, no aioqueue involved.
        assert q.dsn is not None
        client = await asyncpg.connect(q.dsn)
        try:
            rows = await client.fetch(
                "INSERT INTO orders (email, total_cents) "
                "VALUES ('ana@example.com', 4200), ('ben@example.com', 1999) RETURNING id"
            )
            order_ids = [r["id"] for r in rows]
            try:
                async with client.transaction():
                    await client.execute(
                        "INSERT INTO orders (email, total_cents) VALUES ('eve@example.com', 100)"
                    )
                    raise RuntimeError("payment failed")  # rolls back the row AND its job
            except RuntimeError:
                pass
        finally:
            await client.close()

        # The committed inserts woke the worker; wait for each order's job (found by its key).
        listed = await q.list_jobs(kind="order.confirm", limit=1000)
        jobs = {j.unique_key: j.id for j in listed}
        print(f"inserted orders {order_ids}: the trigger enqueued their jobs")
        for order_id in order_ids:
            done = await q.wait(jobs[f"order:{order_id}"], timeout=30)
            print(f"job {done.id}: {done.result}")
        rolled_back = await q.pool.fetchval(
            "SELECT count(*) FROM orders WHERE email = 'eve@example.com'"
        )
        orphans = sum(1 for j in listed if j.payload["email"] == "eve@example.com")
        print(f"rolled-back orders: {rolled_back}, their jobs: {orphans}")

        await worker.stop()
        await running


if __name__ == "__main__":
    asyncio.run(main())
