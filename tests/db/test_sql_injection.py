"""S2: hostile text in every filter and key that reaches SQL is either rejected by validation or
passed as a bind parameter, never interpreted; a canary table stays intact."""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import aioqueue

HOSTILE = st.one_of(
    st.text(max_size=200),
    st.sampled_from(
        [
            "'; DROP TABLE canary; --",
            '" OR 1=1 --',
            "$$; DROP TABLE canary; $$",
            "\\",
            "\u202e",
            "a\x00b",
            "x" * 10_000,
            "%s",
            "{}",
            "canary'::regclass",
        ]
    ),
)


class Env:
    def __init__(self, dsn: str) -> None:
        self.loop = asyncio.new_event_loop()
        self.schema = f"fuzz_{secrets.token_hex(4)}"
        self.q: aioqueue.Queue = self.run(aioqueue.Queue.connect(dsn, schema=self.schema))
        self.run(
            self.q.pool.execute(
                "CREATE TABLE IF NOT EXISTS canary (x int); INSERT INTO canary VALUES (1)"
            )
        )

    def run(self, coro: Any) -> Any:
        return self.loop.run_until_complete(coro)


@pytest.fixture(scope="module")
def env(dsn: str) -> Iterator[Env]:
    e = Env(dsn)
    yield e
    e.run(e.q.pool.execute(f'DROP SCHEMA "{e.schema}" CASCADE; DROP TABLE canary'))
    e.run(e.q.close())
    e.loop.close()


FUZZ = settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)


@FUZZ
@given(kind=HOSTILE, queue_name=HOSTILE, state=HOSTILE)
def test_list_filters(env: Env, kind: str, queue_name: str, state: str) -> None:
    try:
        env.run(env.q.list_jobs(kind=kind, queue_name=queue_name))
        env.run(env.q.list_jobs(state=state))
    except aioqueue.ConfigurationError:
        pass  # an unknown state or a NUL character is refused before any SQL
    assert env.run(env.q.pool.fetchval("SELECT count(*) FROM canary")) == 1


@FUZZ
@given(kind=HOSTILE, key=HOSTILE)
def test_keys_round_trip_or_are_rejected(env: Env, kind: str, key: str) -> None:
    try:
        out = env.run(env.q.enqueue(kind, {"k": key}, unique_key=key))
    except (aioqueue.InvalidJobError, aioqueue.PayloadValueError):
        return
    job = env.run(env.q.get_job(out.id))
    assert (job.kind, job.unique_key, job.payload) == (kind, key, {"k": key})
    cancelled = env.run(env.q.cancel_by_key(kind, key))
    assert cancelled.id == out.id
    assert env.run(env.q.pool.fetchval("SELECT count(*) FROM canary")) == 1


@FUZZ
@given(name=HOSTILE)
def test_cron_names(env: Env, name: str) -> None:
    tasks = aioqueue.Tasks()
    try:
        tasks.cron("* * * * *", "k", name=name)
    except aioqueue.ConfigurationError:
        return
    assert "\x00" not in name  # PostgreSQL could not store it: refused at declaration
