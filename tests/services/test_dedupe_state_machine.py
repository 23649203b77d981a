"""F2: a stateful property test of dedupe. Random enqueues (every mode, 3 keys, delays),
enqueue_many batches, claims, completions, cancels, rescues and retries; after every step at
most one active job per (kind, unique_key), every call answered with an id, outcomes in order."""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule

import aioqueue

MODES = ["ignore", "replace", "preserve_run_at", "unsafe_dedupe", "supersede"]
KEYS = ["a", "b", "c"]


class Env:
    def __init__(self, dsn: str) -> None:
        self.loop = asyncio.new_event_loop()
        self.schema = f"sm_{secrets.token_hex(4)}"
        self.q: aioqueue.Queue = self.run(aioqueue.Queue.connect(dsn, schema=self.schema))

    def run(self, coro: Any) -> Any:
        return self.loop.run_until_complete(coro)


ENV: Env | None = None


@pytest.fixture(scope="module", autouse=True)
def env(dsn: str) -> Iterator[Env]:
    global ENV
    ENV = Env(dsn)
    yield ENV
    ENV.run(ENV.q.pool.execute(f'DROP SCHEMA "{ENV.schema}" CASCADE'))
    ENV.run(ENV.q.close())
    ENV.loop.close()
    ENV = None


class Dedupe(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        assert ENV is not None
        self.env = ENV
        self.q = ENV.q
        self.s = ENV.schema
        self.env.run(self.q.pool.execute(f'TRUNCATE "{self.s}".jobs'))

    def sql(self, text: str, *args: Any) -> Any:
        return self.env.run(self.q.pool.fetch(text, *args))

    @rule(
        key=st.sampled_from(KEYS),
        mode=st.sampled_from(MODES),
        delay=st.sampled_from([None, 0, 60]),
        list_payload=st.booleans(),
    )
    def enqueue(self, key: str, mode: Any, delay: float | None, list_payload: bool) -> None:
        payload: Any = [key] if list_payload else {"k": key}
        out = self.env.run(
            self.q.enqueue("k", payload, unique_key=key, on_conflict=mode, delay=delay)
        )
        assert out.id is not None

    @rule(
        keys=st.lists(st.sampled_from([*KEYS, None]), min_size=1, max_size=6),
        mode=st.sampled_from(MODES),
    )
    def enqueue_many(self, keys: list[str | None], mode: Any) -> None:
        outs = self.env.run(
            self.q.enqueue_many(
                [
                    {"kind": "k", "payload": {"i": i}, "unique_key": k, "on_conflict": mode}
                    for i, k in enumerate(keys)
                ]
            )
        )
        assert len(outs) == len(keys)
        for i, (k, out) in enumerate(zip(keys, outs, strict=True)):
            assert out.id is not None
            if k is not None and k in keys[:i] and mode != "supersede":
                first = outs[keys.index(k)]
                # a duplicate inside one call returns the job of its first occurrence
                assert out.id == first.id or mode in ("replace", "preserve_run_at")

    @rule(n=st.integers(1, 3))
    def claim(self, n: int) -> None:
        self.env.run(
            self.q.queries.job_claim(
                self.q.pool,
                kinds=["k"],
                default_max_attempts=[3],
                forbidden_flags=[],
                batch=n,
                worker_id="sm",
                lease=30.0,
            )
        )

    @rule(state=st.sampled_from(["completed", "failed", "cancelled"]))
    def finish_one(self, state: str) -> None:
        self.sql(
            f'UPDATE "{self.s}".jobs SET state = $1::text::"{self.s}".job_state, '
            "finished_at = now() WHERE id = (SELECT min(id) FROM "
            f"\"{self.s}\".jobs WHERE state IN ('running', 'pending'))",
            state,
        )

    @rule()
    def rescue(self) -> None:
        self.sql(
            f"UPDATE \"{self.s}\".jobs SET lease_expires_at = now() - interval '1 s' "
            "WHERE state = 'running'"
        )
        self.env.run(self.q.queries.job_rescue_expired(self.q.pool, limit=100))

    @rule()
    def retry_a_finished_one(self) -> None:
        rows = self.sql(
            f"SELECT id FROM \"{self.s}\".jobs WHERE state IN ('failed', 'cancelled') "
            "ORDER BY id LIMIT 1"
        )
        if rows:
            out = self.env.run(self.q.retry(rows[0]["id"]))
            assert out.id is not None

    @invariant()
    def one_active_job_per_key(self) -> None:
        rows = self.sql(
            f'SELECT unique_key, count(*) AS n FROM "{self.s}".jobs '
            "WHERE unique_key IS NOT NULL AND state IN ('pending', 'scheduled', 'running') "
            "GROUP BY unique_key"
        )
        assert all(r["n"] == 1 for r in rows), rows


Dedupe.TestCase.settings = settings(
    max_examples=100,
    stateful_step_count=30,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
TestDedupe = Dedupe.TestCase
