"""Flow control (issue 20): rate limits per concurrency key (``key_rate_limit``), a token bucket
per (kind, key) in flow_key_rates, kept by claim_gated under the kind's row lock."""

from __future__ import annotations

import json

import anyio
import asyncpg
import pytest

import aioqueue
from aioqueue._flow import describe
from tests.support.cli import aq
from tests.support.flow import Stamps, ledger_tasks
from tests.support.worker_helpers import running_worker


async def starts_by_key(q: aioqueue.Queue, kind: str) -> dict[str | None, list[float]]:
    """The database's start times of each key's jobs of ``kind``, sorted."""
    rows = await q.pool.fetch(
        f'SELECT concurrency_key, started_at FROM "{q.config.schema}".jobs WHERE kind = $1',
        kind,
    )
    out: dict[str | None, list[float]] = {}
    for r in rows:
        assert r["started_at"] is not None, r
        out.setdefault(r["concurrency_key"], []).append(r["started_at"].timestamp())
    return {k: sorted(v) for k, v in out.items()}


def assert_bucket(times: list[float], n: int, period: float) -> None:
    """A bucket of n refilled at n per period: for any two starts i < j (in start order),
    j - i + 1 <= n + n * (t_j - t_i) / period."""
    for i in range(len(times)):
        for j in range(i + 1, len(times)):
            allowed = n + n * (times[j] - times[i]) / period + 0.1
            assert j - i + 1 <= allowed, (i, j, times)


async def test_key_rate_limit_is_a_token_bucket_per_key(q: aioqueue.Queue) -> None:
    """key_rate_limit=(3, 1.0), two workers: keys a and b each start at most 3 + 3 * w jobs in
    any window of w seconds (database start times), independently of each other, while the
    two keys are not held back by each other."""
    stamps = Stamps()
    tasks = ledger_tasks("kr", stamps, key_rate_limit=(3, 1.0))
    specs = [
        aioqueue.JobSpec(kind="kr", payload={"key": k}, concurrency_key=k)
        for _ in range(9)
        for k in ("a", "b")
    ]
    await q.enqueue_many(specs)
    async with (
        running_worker(q, tasks, concurrency=10, poll_interval=0.05),
        running_worker(q, tasks, concurrency=10, poll_interval=0.05),
    ):
        await stamps.wait(18)
    by_key = await starts_by_key(q, "kr")
    assert sorted(by_key) == ["a", "b"]
    for times in by_key.values():
        assert len(times) == 9
        assert_bucket(times, 3, 1.0)
        # and it did not wait much longer than the bucket requires (6 refills of 1/3 s)
        assert times[-1] - times[0] >= 6 / 3 - 0.1
    # the two keys ran side by side: each key's burst of 3 started before the other's last
    assert by_key["a"][2] < by_key["b"][-1] and by_key["b"][2] < by_key["a"][-1]
    (k,) = (await q.limits()).kinds
    assert k.key_rate_limit == (3, 1.0) and k.rate_limit is None


async def test_a_key_out_of_tokens_does_not_hold_back_the_others(q: aioqueue.Queue) -> None:
    """key_rate_limit=(1, 3600): 60 keys each start one job and then have none left, more keys
    than one claim probes (2 * batch + 32). Keys enqueued later, sorting among and after them,
    still start at once: the round robin passes over keys without tokens. Nothing fails."""
    stamps = Stamps()
    tasks = ledger_tasks("kx", stamps, key_rate_limit=(1, 3600))
    spent = [f"k{i:02}" for i in range(60)]
    held = await q.enqueue_many(
        [aioqueue.JobSpec(kind="kx", payload={"key": k}, concurrency_key=k) for k in spent] * 2
    )
    async with running_worker(q, tasks, concurrency=2, poll_interval=0.05):
        await stamps.wait(60)
        assert sorted(k for k, _, _ in stamps) == spent  # one each: the bucket held
        late = ["k30x", "k59x", "zz"]
        await q.enqueue_many(
            [aioqueue.JobSpec(kind="kx", payload={"key": k}, concurrency_key=k) for k in late]
        )
        await stamps.wait(63)
    assert sorted(k for k, _, _ in stamps[60:]) == late
    states = [(await q.get_job(r.id)).state for r in held]
    assert sorted(s.value for s in states) == ["completed"] * 60 + ["pending"] * 60
    flow = (await q.limits()).kinds[0]
    assert flow.throttled == 60  # held back, waiting for tokens (never failed)


async def test_key_rate_with_key_concurrency_and_unkeyed_jobs(q: aioqueue.Queue) -> None:
    """key_rate_limit with key_concurrency: each key gets the lesser of its free slots and its
    tokens. Jobs without a key are not limited per key."""
    stamps = Stamps()
    tasks = ledger_tasks("kc", stamps, key_concurrency=1, key_rate_limit=(2, 3600))
    keyed = [aioqueue.JobSpec(kind="kc", payload={"key": "t"}, concurrency_key="t")] * 4
    plain = [aioqueue.JobSpec(kind="kc", payload={"key": None})] * 5
    await q.enqueue_many(keyed + plain)
    async with running_worker(q, tasks, concurrency=10, poll_interval=0.05):
        await stamps.wait(7)
    keys = [k for k, _, _ in stamps]
    assert keys.count("t") == 2 and keys.count(None) == 5
    t_runs = sorted((s, e) for k, s, e in stamps if k == "t")
    assert t_runs[0][1] <= t_runs[1][0]  # key_concurrency=1: one after the other


async def test_key_buckets_are_pruned_reset_and_dropped(q: aioqueue.Queue) -> None:
    """A bucket row is written for each key served; rows a period old (full again) are
    deleted by the next claims of the kind, a bounded number per claim; a new key_rate_limit
    empties the kind's rows (every bucket full), and reset_limits drops them."""
    s = q.config.schema
    stamps = Stamps()
    tasks = ledger_tasks("kp", stamps, key_rate_limit=(5, 60))
    await q.enqueue_many(
        [aioqueue.JobSpec(kind="kp", payload={}, concurrency_key=f"p{i:03}") for i in range(100)]
    )
    async with running_worker(q, tasks, concurrency=10, poll_interval=0.05):
        await stamps.wait(100)
    rows = f'SELECT count(*) FROM "{s}".flow_key_rates WHERE kind = $1'
    assert await q.pool.fetchval(rows, "kp") == 100
    tokens = await q.pool.fetchval(f'SELECT array_agg(DISTINCT tokens) FROM "{s}".flow_key_rates')
    assert [round(t) for t in tokens] == [4]
    # make 80 of them a period old: two claims (batch 10: up to 74 rows each) delete them
    await q.pool.execute(
        f"""UPDATE "{s}".flow_key_rates SET tokens_at = tokens_at - interval '61 seconds'
            WHERE concurrency_key < 'p080'"""
    )
    claim = f'SELECT * FROM "{s}".claim_gated($1, $2, $3, $4, $5, $6, $7)'
    for left in (100 - 74, 20):
        assert await q.pool.fetch(claim, ["kp"], [25], [], 10, "w", 30.0, None) == []
        assert await q.pool.fetchval(rows, "kp") == left
    assert (
        await q.pool.fetchval(
            f"""SELECT min(concurrency_key) FROM "{s}".flow_key_rates WHERE kind = 'kp'"""
        )
        == "p080"
    )
    await q.set_limits("kp", key_rate_limit=(5, 60))  # set again: every bucket full
    assert await q.pool.fetchval(rows, "kp") == 0
    await q.enqueue("kp", {}, concurrency_key="again")
    async with running_worker(q, tasks, concurrency=10, poll_interval=0.05):
        await stamps.wait(101)
    assert await q.pool.fetchval(rows, "kp") == 1
    assert await q.reset_limits("kp")
    assert await q.pool.fetchval(rows, "kp") == 0


async def test_key_rate_limit_settings_validate_and_show(q: aioqueue.Queue, schema: str) -> None:
    for bad in ((0, 1), (1, 0), (1, 31_536_001), (1,), "1/60", (True, 1)):
        with pytest.raises(aioqueue.ConfigurationError, match="key_rate_limit"):
            await q.set_limits("x", key_rate_limit=bad)  # type: ignore[arg-type]
    with pytest.raises(aioqueue.ConfigurationError, match="key_rate_limit"):
        aioqueue.Tasks().task("x", key_rate_limit=(5, -1))
    sql = f'SELECT "{schema}".set_limits($1, $2::jsonb)'
    with pytest.raises(asyncpg.InvalidParameterValueError, match="key_rate_limit"):
        await q.pool.fetch(sql, "x", '{"key_rate_limit": [1]}')
    with pytest.raises(asyncpg.InvalidParameterValueError, match="key_rate_n"):
        await q.pool.fetch(sql, "x", '{"key_rate_limit": [0, 60]}')
    assert (await q.limits()).kinds == []  # nothing half-written

    await q.set_limits("x", key_rate_limit=(10, 60))
    (k,) = (await q.limits()).kinds
    assert (k.key_rate_limit, k.rate_limit, k.key_concurrency) == ((10, 60.0), None, None)
    assert describe(await q.limits()) == ["x: running 0, rate per key 10/60s"]
    stats = await q.stats()
    assert stats.flow is not None and stats.flow.kinds[0].key_rate_limit == (10, 60.0)
    gated = f'SELECT gated FROM "{schema}".flow_limits WHERE kind = $1'
    assert await q.pool.fetchval(gated, "x") is True  # claimed by claim_gated only
    await q.set_limits("x", key_rate_limit=None)
    assert (await q.limits()).kinds[0].key_rate_limit is None
    assert await q.pool.fetchval(gated, "x") is False


async def test_cli_limits_set_key_rate(q: aioqueue.Queue, dsn: str, schema: str) -> None:
    base = ["--dsn", dsn, "--schema", schema]
    await anyio.to_thread.run_sync(lambda: _cli_limits_set_key_rate(base))


def _cli_limits_set_key_rate(base: list[str]) -> None:
    done = aq(*base, "limits", "set", "clikind", "--key-rate", "5/60")
    assert done.returncode == 0, done.stderr
    shown = aq(*base, "limits", "show")
    assert "clikind: running 0, rate per key 5/60s" in shown.stdout, shown.stdout
    as_json = json.loads(aq(*base, "limits", "show", "--json").stdout)
    assert as_json["kinds"][0]["key_rate_limit"] == [5, 60.0]
    bad = aq(*base, "limits", "set", "clikind", "--key-rate", "5")
    assert bad.returncode != 0 and "STARTS/SECONDS" in bad.stderr
    cleared = aq(*base, "limits", "set", "clikind", "--key-rate", "none")
    assert cleared.returncode == 0, cleared.stderr
