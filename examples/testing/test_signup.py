"""How to test your own code that enqueues jobs and the handlers that run them, with pytest.

Run: ``pytest examples/testing`` (uses $AIOQUEUE_DSN, else the embedded server). Each test gets
its own schema, so tests never see each other's jobs.
"""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator

import pytest

import aioqueue
from aioqueue.testing import ANY, assert_enqueued, assert_not_enqueued, drain, run_job

pytestmark = pytest.mark.anyio

# -- the application code under test -------------------------------------------------------------

tasks = aioqueue.Tasks()
SENT: list[str] = []


@tasks.task("send.welcome")
async def send_welcome(ctx: aioqueue.JobContext, payload: dict) -> str:
    SENT.append(payload["email"])
    return f"welcome sent to {payload['email']}"


async def sign_up(q: aioqueue.Queue, email: str) -> None:
    if "@" not in email:
        raise ValueError("not an email address")
    await q.enqueue("send.welcome", {"email": email, "token": secrets.token_hex(4)})


# -- fixtures (put these in your conftest.py) -----------------------------------------------------


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
async def q() -> AsyncIterator[aioqueue.Queue]:
    schema = f"test_{secrets.token_hex(4)}"
    queue = await aioqueue.Queue.connect(schema=schema)
    try:
        yield queue
    finally:
        await queue.pool.execute(f'DROP SCHEMA "{schema}" CASCADE')
        await queue.close()


# -- the tests ------------------------------------------------------------------------------------


async def test_sign_up_enqueues_a_welcome_email(q: aioqueue.Queue) -> None:
    await sign_up(q, "a@b.com")
    (job,) = await assert_enqueued(q, "send.welcome", {"email": "a@b.com", "token": ANY})
    assert job.attempts == 0


async def test_bad_email_enqueues_nothing(q: aioqueue.Queue) -> None:
    with pytest.raises(ValueError, match="not an email"):
        await sign_up(q, "nope")
    await assert_not_enqueued(q, "send.welcome")


async def test_the_handler_inline() -> None:
    assert await run_job(tasks, "send.welcome", {"email": "c@d.com"}) == "welcome sent to c@d.com"


async def test_the_whole_flow(q: aioqueue.Queue) -> None:
    await sign_up(q, "e@f.com")
    counts = await drain(q, tasks)
    assert counts["completed"] == 1
    assert "e@f.com" in SENT
    await assert_not_enqueued(q, "send.welcome")  # nothing left waiting
