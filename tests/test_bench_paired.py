"""The benchmarks' paired comparison: its verdict decides whether reckon keeps up with a peer,
so its interval must hold what it claims."""

from __future__ import annotations

import math
import sys
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "bench"))

from _paired import median_interval, paired

figures = st.floats(min_value=1e-3, max_value=1e6, allow_nan=False, allow_infinity=False)


def _coverage(n: int, k: int) -> float:
    """P(the k-th smallest <= median <= the k-th largest) for n samples: 1 - 2 P(Bin(n,1/2) < k)."""
    return 1.0 - 2.0 * sum(math.comb(n, i) for i in range(k)) / 2**n


@given(st.integers(min_value=1, max_value=60), st.sampled_from([0.8, 0.9, 0.95]))
def test_interval_is_the_narrowest_with_the_confidence(n: int, confidence: float) -> None:
    k, coverage = median_interval(n, confidence)
    assert 1 <= k <= max(n // 2, 1)
    assert coverage == pytest.approx(_coverage(n, k))
    if coverage >= confidence and k < n // 2:
        assert _coverage(n, k + 1) < confidence  # one step narrower would fall short
    if _coverage(n, 1) < confidence:
        assert k == 1  # too few rounds: the extremes, and a coverage that says so


def test_known_intervals() -> None:
    assert median_interval(5, 0.9) == (1, pytest.approx(0.9375))
    assert median_interval(9, 0.9) == (2, pytest.approx(1 - 20 / 512))
    assert median_interval(11, 0.9) == (3, pytest.approx(1 - 2 * 67 / 2048))


@given(st.lists(st.tuples(figures, figures), min_size=2, max_size=30))
def test_interval_holds_the_median_ratio(rounds: list[tuple[float, float]]) -> None:
    ours, theirs = [a for a, _ in rounds], [b for _, b in rounds]
    cmp = paired(ours, theirs, higher_is_better=True)
    ratios = sorted(a / b for a, b in rounds)
    assert cmp.low <= cmp.ratio <= cmp.high
    assert cmp.low in ratios and cmp.high in ratios
    assert cmp.rounds == len(rounds)


@given(st.lists(st.tuples(figures, figures), min_size=2, max_size=30))
def test_lower_is_better_is_the_inverse(rounds: list[tuple[float, float]]) -> None:
    ours, theirs = [a for a, _ in rounds], [b for _, b in rounds]
    rate = paired(ours, theirs, higher_is_better=True)
    time = paired(ours, theirs, higher_is_better=False)
    assert time.ratio == pytest.approx(1 / rate.ratio)
    assert time.low == pytest.approx(1 / rate.high)
    assert time.high == pytest.approx(1 / rate.low)


def test_verdicts() -> None:
    assert paired([11, 12, 13, 12, 11], [10] * 5, higher_is_better=True).verdict == "above"
    assert paired([9, 8, 9, 9, 8], [10] * 5, higher_is_better=True).verdict == "below"
    assert paired([9, 11, 10, 12, 8], [10] * 5, higher_is_better=True).verdict == "at"
    # a time: less is better
    assert paired([9, 8, 9, 9, 8], [10] * 5, higher_is_better=False).verdict == "above"
    one = paired([12], [10], higher_is_better=True)
    assert one.verdict == "one round" and one.ratio == pytest.approx(1.2)


def test_mismatched_rounds_are_refused() -> None:
    with pytest.raises(ValueError, match="one figure per side per round"):
        paired([1.0, 2.0], [1.0], higher_is_better=True)
    with pytest.raises(ValueError):
        paired([], [], higher_is_better=True)


def test_a_round_without_a_figure_gives_no_verdict() -> None:
    cmp = paired([10.0, 0.0, 11.0], [10.0, 10.0, 10.0], higher_is_better=True)
    assert math.isnan(cmp.ratio) and cmp.verdict == "no figure"
