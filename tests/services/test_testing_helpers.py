"""aioqueue.testing for users' tests: enqueued / assert_enqueued / run_job / drain, and the pytest
example in examples/testing run as a user would run it."""

from __future__ import annotations

import os
import subprocess
import sys

import msgspec
import pytest

import aioqueue
from aioqueue.testing import ANY, assert_enqueued, assert_not_enqueued, enqueued
from tests.conftest import ROOT


class Mail(msgspec.Struct):
    to: str
    n: int


async def test_enqueued_lists_waiting_jobs_in_enqueue_order(q: aioqueue.Queue) -> None:
    a = await q.enqueue("mail", {"n": 1})
    b = await q.enqueue("mail", {"n": 2}, delay=60)
    await q.enqueue("other", {})
    c = await q.enqueue("mail", {"n": 3})
    await q.complete([c.id])
    assert [j.id for j in await enqueued(q, "mail")] == [a.id, b.id]
    assert [j.id for j in await enqueued(q, "mail", states=None)] == [a.id, b.id, c.id]
    assert len(await enqueued(q)) == 3


async def test_assert_enqueued_matches_payloads_with_any_and_structs(q: aioqueue.Queue) -> None:
    await q.enqueue("mail", Mail(to="a@b.com", n=1), unique_key="k1", priority=3)
    await q.enqueue("mail", {"to": "c@d.com", "n": 2})
    assert len(await assert_enqueued(q, "mail")) == 2
    assert len(await assert_enqueued(q, "mail", {"to": ANY, "n": ANY}, count=2)) == 2
    (job,) = await assert_enqueued(q, "mail", Mail(to="a@b.com", n=1), unique_key="k1", priority=3)
    assert job.payload == {"to": "a@b.com", "n": 1}
    await assert_not_enqueued(q, "mail", {"to": "x@y.com", "n": 1})
    await assert_not_enqueued(q, "absent")


async def test_assert_enqueued_failure_lists_what_was_enqueued(q: aioqueue.Queue) -> None:
    await q.enqueue("mail", {"to": "a@b.com"})
    with pytest.raises(AssertionError) as info:
        await assert_enqueued(q, "mail", {"to": "z@z.com"})
    message = str(info.value)
    assert "found 0" in message and "'a@b.com'" in message
    with pytest.raises(AssertionError, match="expected 2"):
        await assert_enqueued(q, "mail", count=2)
    with pytest.raises(AssertionError, match="none"):
        await assert_enqueued(q, "nothing")


def test_the_users_pytest_example_passes(dsn: str) -> None:
    env = {**os.environ, "AIOQUEUE_DSN": dsn}
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "examples/testing"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "4 passed" in proc.stdout
