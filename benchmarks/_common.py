"""Shared helpers: the server, a raw baseline table, timing, and result records.

Every benchmark measures aioqueue AND a raw asyncpg baseline doing the same work in the same run,
interleaved, so the figure that matters is the ratio. Durability stays on (fsync, synchronous
commit for the raw baseline and for aioqueue's outcomes).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import statistics
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import asyncpg

import aioqueue

RESULTS_DIR = Path(__file__).parent / "results"
RAW_TABLE = """
DROP TABLE IF EXISTS bench_raw_jobs;
CREATE TABLE bench_raw_jobs (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    kind text NOT NULL,
    payload jsonb NOT NULL,
    state text NOT NULL DEFAULT 'pending',
    priority smallint NOT NULL DEFAULT 0,
    run_at timestamptz NOT NULL DEFAULT now(),
    attempts int NOT NULL DEFAULT 0,
    result jsonb,
    finished_at timestamptz
) WITH (fillfactor = 70);
CREATE INDEX bench_raw_claim ON bench_raw_jobs (priority DESC, run_at, id) WHERE state = 'pending';
"""
RAW_INSERT = "INSERT INTO bench_raw_jobs (kind, payload) VALUES ($1, $2::text::jsonb) RETURNING id"
RAW_INSERT_MANY = (
    "INSERT INTO bench_raw_jobs (kind, payload) "
    "SELECT $1, p::jsonb FROM unnest($2::text[]) AS p RETURNING id"
)
RAW_CLAIM = (
    "UPDATE bench_raw_jobs SET state = 'running', attempts = attempts + 1 WHERE id IN ("
    "SELECT id FROM bench_raw_jobs WHERE state = 'pending' AND run_at <= now() "
    "ORDER BY priority DESC, run_at, id LIMIT $1 FOR UPDATE SKIP LOCKED) RETURNING id, payload"
)
RAW_COMPLETE = (
    "UPDATE bench_raw_jobs SET state = 'completed', result = 'null', finished_at = now() "
    "WHERE id = ANY($1::bigint[])"
)


class _UseDsn(argparse.Action):
    """--dsn: the server to measure, as $AIOQUEUE_DSN, which every benchmark (and the worker
    processes the multiprocess one starts) reads."""

    def __call__(self, parser: Any, namespace: Any, value: Any, option: Any = None) -> None:
        os.environ["AIOQUEUE_DSN"] = str(value)
        setattr(namespace, self.dest, value)


def parser(description: str) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=description)
    p.add_argument(
        "--dsn",
        action=_UseDsn,
        default=None,
        help="PostgreSQL to run against (default: $AIOQUEUE_DSN, else the embedded server)",
    )
    p.add_argument("--quick", action="store_true", help="small N: about a minute for the suite")
    p.add_argument("--n", type=int, default=None, help="override the number of jobs")
    p.add_argument("--repeat", type=int, default=None, help="interleaved repeats (median)")
    p.add_argument("--out", type=Path, default=None, help="results file (JSON lines)")
    return p


def dsn() -> str:
    configured = os.environ.get("AIOQUEUE_DSN") or os.environ.get("DATABASE_URL")
    if configured:
        return configured
    from aioqueue._db import embedded

    return embedded.ensure_server(Path(".aioqueue") / "pgdata")


async def fresh_queue(server_dsn: str, name: str, **kwargs: Any) -> aioqueue.Queue:
    schema = f"bench_{name}"
    q = await aioqueue.Queue.connect(server_dsn, schema=schema, migrate=None, **kwargs)
    await q.pool.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
    await q.migrate()
    return q


async def load_backlog(q: aioqueue.Queue, n: int) -> None:
    """Enqueue ``n`` no-op ``bench`` jobs in batches, then VACUUM ANALYZE, ready to drain."""
    for start in range(0, n, 5000):
        await q.enqueue_many(
            [{"kind": "bench", "payload": {"i": i}} for i in range(start, min(n, start + 5000))]
        )
    await q.pool.execute(f'VACUUM ANALYZE "{q.config.schema}".jobs')


async def fresh_raw(conn: asyncpg.Connection) -> None:
    await conn.execute(RAW_TABLE)


async def timed(fn: Callable[[], Awaitable[Any]]) -> float:
    start = time.perf_counter()
    await fn()
    return time.perf_counter() - start


def median(values: list[float]) -> float:
    return statistics.median(values)


CHUNKS = 10


async def compare(
    repeat: int,
    n: int,
    *,
    setup: Callable[[], Awaitable[Any]],
    raw: Callable[[int, int], Awaitable[Any]],
    ours: Callable[[int, int], Awaitable[Any]],
    step: int = 1,
) -> tuple[float, float]:
    """Repeats of (setup, then raw baseline and aioqueue alternating in ``CHUNKS`` slices of the
    N jobs, which goes first alternating too): median rates, ours first. ``raw(start, count)``
    and ``ours(start, count)`` do jobs ``start`` to ``start + count``; slices are multiples of
    ``step`` (a batch size). Slicing keeps this shared host's slow spells, which last seconds,
    from landing on one side only (whole runs back to back gave the same code opposite ratios:
    RESULTS.md, "Figures behind the harness")."""
    if n <= 0 or n % step:
        raise ValueError(f"N must be a positive multiple of {step}, got {n}")
    raw_rates: list[float] = []
    our_rates: list[float] = []
    size = max(step, n // CHUNKS // step * step)
    for _ in range(repeat):
        await setup()
        spent = {"raw": 0.0, "ours": 0.0}
        for index, start in enumerate(range(0, n, size)):
            count = min(size, n - start)
            sides = [("raw", raw), ("ours", ours)]
            for name, fn in sides if index % 2 == 0 else reversed(sides):
                spent[name] += await timed(lambda: fn(start, count))  # noqa: B023 (awaited here)
        raw_rates.append(n / spent["raw"])
        our_rates.append(n / spent["ours"])
    return median(our_rates), median(raw_rates)


def cli_main(
    doc: str | None,
    run: Callable[[int, int, Reporter], Awaitable[Any]],
    *,
    quick_n: int,
    full_n: int,
) -> None:
    """The command line of one benchmark script: --quick / --n / --repeat / --out."""
    args = parser(doc or "").parse_args()
    n = args.n or (quick_n if args.quick else full_n)
    repeat = args.repeat or (1 if args.quick else 3)
    import asyncio

    asyncio.run(run(n, repeat, Reporter(args.out)))


async def pg_version(conn: asyncpg.Connection) -> str:
    return str(await conn.fetchval("SHOW server_version"))


class Reporter:
    """Prints one JSON line per result and appends it to the results file."""

    def __init__(self, out: Path | None) -> None:
        RESULTS_DIR.mkdir(exist_ok=True)
        stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%SZ")
        self.path = out or RESULTS_DIR / f"{stamp}.jsonl"
        self.records: list[dict[str, Any]] = []

    def add(
        self,
        bench: str,
        metric: str,
        value: float,
        unit: str,
        *,
        baseline: float | None,
        higher_is_better: bool = True,
        target: float | None = None,
        pg: str = "",
        **params: Any,
    ) -> dict[str, Any]:
        ratio = None
        if baseline:
            ratio = value / baseline if higher_is_better else baseline / value
        record = {
            "bench": bench,
            "metric": metric,
            "value": round(value, 3),
            "unit": unit,
            "baseline": None if baseline is None else round(baseline, 3),
            "ratio": None if ratio is None else round(ratio, 3),
            "target": target,
            "pass": None if target is None or ratio is None else ratio >= target,
            "params": params,
            "pg_version": pg,
            "machine": {
                "cores": os.cpu_count(),
                "python": platform.python_version(),
                "platform": sys.platform,
            },
        }
        self.records.append(record)
        print(json.dumps(record), flush=True)
        with self.path.open("a") as fh:
            fh.write(json.dumps(record) + "\n")
        return record
