"""The benchmarks' side-by-side timing: both sides do every job once, in alternating slices."""

from __future__ import annotations

import pytest

from benchmarks._common import compare

pytestmark = pytest.mark.anyio


async def test_each_side_does_every_job_once_in_alternating_slices() -> None:
    calls: list[tuple[str, int, int]] = []
    setups: list[int] = []

    async def setup() -> None:
        setups.append(len(calls))

    async def raw(start: int, count: int) -> None:
        calls.append(("raw", start, count))

    async def ours(start: int, count: int) -> None:
        calls.append(("ours", start, count))

    ours_rate, raw_rate = await compare(2, 10_500, setup=setup, raw=raw, ours=ours, step=500)
    assert ours_rate > 0 and raw_rate > 0
    assert setups == [0, len(calls) // 2]  # once before each repeat
    first = calls[: len(calls) // 2]
    for side in ("raw", "ours"):
        slices = sorted((start, count) for name, start, count in first if name == side)
        assert slices == [(start, 1000) for start in range(0, 10_000, 1000)] + [(10_000, 500)]
    assert [name for name, _, _ in first[:4]] == ["raw", "ours", "ours", "raw"]
    with pytest.raises(ValueError, match="multiple of 1000"):
        await compare(1, 1500, setup=setup, raw=raw, ours=ours, step=1000)
