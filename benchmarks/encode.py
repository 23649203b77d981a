"""The enqueue encoders without a database (issue 19): what the known-kinds cache and the
one-document batch of ``_spec.py`` save per spec, measured against the same calls with the
cache off (every spec then takes the general path: a JobSpec, every check). CPU only, so the
figures hold on a loaded host where the enqueue benchmarks (fsync-bound) cannot show them."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterator
from typing import Any

from aioqueue import _spec, config
from benchmarks._common import Reporter, cli_main, median

LIMIT = config.DEFAULT_MAX_PAYLOAD_BYTES
BATCH = 1000


@contextlib.contextmanager
def cache_off() -> Iterator[None]:
    saved, kinds = _spec.KNOWN_KINDS_MAX, dict(_spec._KNOWN_KINDS)
    _spec.KNOWN_KINDS_MAX = 0
    _spec._KNOWN_KINDS.clear()
    try:
        yield
    finally:
        _spec.KNOWN_KINDS_MAX = saved
        _spec._KNOWN_KINDS.update(kinds)


def per_second(fn: Callable[[], Any], items: int, n: int) -> float:
    """Items per second of ``fn`` (which handles ``items`` each call), over about ``n`` items."""
    calls = max(1, n // items)
    start = time.perf_counter()
    for _ in range(calls):
        fn()
    return calls * items / (time.perf_counter() - start)


def ab(fast: Callable[[], Any], items: int, n: int, repeat: int) -> tuple[float, float]:
    """Interleaved: (cache on, cache off) medians."""
    on, off = [], []
    for _ in range(repeat):
        on.append(per_second(fast, items, n))
        with cache_off():
            off.append(per_second(fast, items, n))
    return median(on), median(off)


async def run(n: int, repeat: int, reporter: Reporter) -> list[dict[str, Any]]:
    batch = [{"kind": "bench", "payload": {"i": i, "s": "x" * 20}} for i in range(BATCH)]
    _spec.encode_specs(batch, max_payload_bytes=LIMIT)  # the kind is known from here on
    many = ab(lambda: _spec.encode_specs(batch, max_payload_bytes=LIMIT), BATCH, n, repeat)
    payload = {"i": 1, "s": "x" * 20}
    single = ab(lambda: _spec.encode_plain("bench", payload, max_payload_bytes=LIMIT), 1, n, repeat)
    return [
        reporter.add(
            "encode_many",
            "specs_per_s",
            many[0],
            "specs/s",
            baseline=many[1],
            n=n,
            batch=BATCH,
            repeat=repeat,
            baseline_is="the known-kinds cache off",
        ),
        reporter.add(
            "encode_single",
            "specs_per_s",
            single[0],
            "specs/s",
            baseline=single[1],
            n=n,
            repeat=repeat,
            baseline_is="the known-kinds cache off",
        ),
    ]


if __name__ == "__main__":
    cli_main(__doc__, run, quick_n=50_000, full_n=500_000)
