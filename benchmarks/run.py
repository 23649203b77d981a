"""Run the benchmark suite (`aioqueue bench [--quick] [--only drain,latency]`): every figure with
its raw asyncpg baseline from the same run, a JSON line each, a results file, and a summary table."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from rich.console import Console
from rich.table import Table

from benchmarks import (
    drain,
    encode,
    enqueue_concurrent,
    enqueue_many,
    enqueue_single,
    flow,
    latency,
    mixed,
    multiprocess,
    poison_backlog,
    scaling,
    workflows,
)
from benchmarks._common import Reporter, parser

SUITE = [
    "enqueue_single",
    "enqueue_concurrent",
    "enqueue_many",
    "drain",
    "latency",
    "multiprocess",
    "mixed",
    "poison_backlog",
    "scaling",
    "flow",
    "workflows",
    "encode",
]


async def run_all(quick: bool, only: list[str], repeat: int | None, reporter: Reporter) -> None:
    r = repeat or (1 if quick else 3)
    plan: dict[str, Any] = {
        "enqueue_single": lambda: enqueue_single.run(1000 if quick else 5000, r, reporter),
        "enqueue_concurrent": lambda: enqueue_concurrent.run(5000 if quick else 20000, r, reporter),
        "enqueue_many": lambda: enqueue_many.run(20000 if quick else 100000, r, reporter),
        "drain": lambda: drain.run(10000 if quick else 50000, r, reporter),
        "latency": lambda: latency.run(200 if quick else 1000, 1, reporter),
        "multiprocess": lambda: multiprocess.run(20000 if quick else 200000, r, reporter),
        "mixed": lambda: mixed.run(5 if quick else 30, 2000.0, reporter),
        "poison_backlog": lambda: poison_backlog.run(2000 if quick else 10000, r, reporter),
        "scaling": lambda: scaling.run(20000 if quick else 100000, r, reporter),
        "flow": lambda: flow.run(10000 if quick else 30000, r, reporter),
        "workflows": lambda: workflows.run(2000 if quick else 10000, r, reporter),
        "encode": lambda: encode.run(50_000 if quick else 500_000, r, reporter),
    }
    for name in only:
        await plan[name]()


def summary(reporter: Reporter) -> None:
    table = Table(title=f"aioqueue benchmarks (results in {reporter.path})")
    for col in ("bench", "metric", "aioqueue", "raw baseline", "ratio", "target", ""):
        table.add_column(col)
    for rec in reporter.records:
        target = rec["target"] if rec["target"] is not None else rec["params"].get("target_ms")
        ok = rec["pass"] if rec["pass"] is not None else rec["params"].get("pass_ms")
        table.add_row(
            rec["bench"],
            rec["metric"],
            f"{rec['value']:,}",
            f"{rec['baseline'] or '-'}",
            f"{rec['ratio'] or '-'}",
            "-" if target is None else str(target),
            "" if ok is None else ("PASS" if ok else "MISS"),
        )
    Console().print(table)


def main() -> None:
    p = parser(__doc__ or "")
    p.add_argument("--only", default=",".join(SUITE))
    args = p.parse_args()
    only = [x.strip() for x in args.only.split(",") if x.strip()]
    unknown = set(only) - set(SUITE)
    if unknown:
        p.error(f"unknown benchmark(s): {', '.join(sorted(unknown))}; choose from {SUITE}")
    reporter = Reporter(args.out)
    asyncio.run(run_all(args.quick, only, args.repeat, reporter))
    summary(reporter)


if __name__ == "__main__":
    main()
