"""F5 backoff properties (Hypothesis): the default delay stays inside its documented band
(exp(min(attempts, 10)) s ± 10 %), grows with the attempt until the cap, and the jitter
spreads a burst of failures instead of retrying them in lockstep."""

from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from aioqueue._backoff import JITTER, default_delay, retry_delay

attempts = st.integers(min_value=-5, max_value=10_000)
unit = st.floats(min_value=0.0, max_value=1.0, exclude_max=True)


@given(attempts, unit)
def test_default_delay_is_within_the_documented_band(n: int, r: float) -> None:
    base = math.exp(min(max(n, 1), 10))
    delay = default_delay(n, rng=lambda: r)
    assert base * (1 - JITTER) <= delay <= base * (1 + JITTER)
    assert math.e * (1 - JITTER) <= delay <= math.exp(10) * (1 + JITTER)  # [base, cap]


@given(st.integers(min_value=1, max_value=100), unit)
def test_default_delay_never_shrinks_for_the_same_jitter(n: int, r: float) -> None:
    assert default_delay(n + 1, rng=lambda: r) >= default_delay(n, rng=lambda: r)


@given(st.integers(min_value=1, max_value=9))
def test_each_attempt_waits_longer_than_the_last_even_with_the_worst_jitter(n: int) -> None:
    """exp grows by e (2.7x) per attempt, more than the jitter band (1.1 / 0.9) can undo."""
    longest_before = default_delay(n, rng=lambda: 1.0)
    assert default_delay(n + 1, rng=lambda: 0.0) > longest_before


def test_jitter_spreads_a_burst() -> None:
    delays = [default_delay(5) for _ in range(200)]
    assert len(set(delays)) > 190
    assert max(delays) - min(delays) > 0.1 * math.exp(5)  # most of the ±10 % band is used


@given(st.floats(min_value=0, max_value=1e9, allow_nan=False), attempts)
def test_fixed_and_callable_policies_are_taken_as_given(seconds: float, n: int) -> None:
    assert retry_delay(seconds, n) == seconds
    assert retry_delay(lambda a: seconds, n) == seconds


@pytest.mark.parametrize("bad", [-1.0, math.inf, math.nan])
def test_a_policy_giving_a_bad_delay_is_refused(bad: float) -> None:
    with pytest.raises(ValueError, match="retry_delay gave"):
        retry_delay(lambda a: bad, 1)
