"""Paired comparison of two systems measured in interleaved rounds on a noisy machine.

A machine whose load comes and goes moves every round's figures together: two rounds measured
back to back see about the same machine, two rounds a minute apart may not. So each round's
reckon figure is divided by its partner's figure from the same round, and the ratios are
summarised: their median, and a distribution-free confidence interval for that median (the
order statistics that bracket it with at least the stated probability, from the binomial
distribution; no assumption about the shape of the noise). The verdict reads the interval:
``above`` or ``below`` when all of it lies on one side of 1, ``at`` when it holds 1 (the
run cannot tell the two apart).

The ratio of two bests, which the benchmarks printed before, rewards one lucky round; the
ratio of two medians ignores which rounds were measured together.
"""

from __future__ import annotations

import math
from dataclasses import dataclass


@dataclass(frozen=True)
class Paired:
    """How reckon compares with its peer over the rounds of one row (>= 1: reckon as good or
    better, whichever way the row counts)."""

    ratio: float  # median of the rounds' ratios
    low: float  # the confidence interval's ends (equal to ratio for a single round)
    high: float
    coverage: float  # the interval's actual confidence (0 for a single round)
    rounds: int

    @property
    def verdict(self) -> str:
        if math.isnan(self.ratio):
            return "no figure"  # a round measured nothing (zero or negative): no comparison
        if self.rounds < 2:
            return "one round"
        if self.low > 1.0:
            return "above"
        if self.high < 1.0:
            return "below"
        return "at"

    def __str__(self) -> str:
        if self.rounds < 2:
            return f"{self.ratio:5.2f}x"
        return f"{self.ratio:5.2f}x [{self.low:.2f}-{self.high:.2f}] {self.verdict}"


def median_interval(n: int, confidence: float) -> tuple[int, float]:
    """The largest k such that the k-th smallest and k-th largest of n samples bracket the
    median with probability >= ``confidence``, and that probability (k = 1, the extremes,
    when even they fall short: then the probability says so)."""
    best_k, best_cov = 1, 1.0 - 2.0 * 0.5**n
    cumulative = 0.0  # P(Binomial(n, 1/2) <= k - 1)
    for k in range(1, n // 2 + 1):
        cumulative += math.comb(n, k - 1) * 0.5**n
        coverage = 1.0 - 2.0 * cumulative
        if coverage >= confidence:
            best_k, best_cov = k, coverage
        else:
            break
    return best_k, best_cov


def paired(
    ours: list[float], theirs: list[float], *, higher_is_better: bool, confidence: float = 0.9
) -> Paired:
    """Compare round by round: ``ours[i]`` and ``theirs[i]`` were measured in the same round."""
    if len(ours) != len(theirs) or not ours:
        raise ValueError(f"need one figure per side per round, got {len(ours)} and {len(theirs)}")
    ratios = sorted(
        (a / b if higher_is_better else b / a) if a > 0 and b > 0 else math.nan
        for a, b in zip(ours, theirs, strict=True)
    )
    n = len(ratios)
    if any(math.isnan(r) for r in ratios):
        return Paired(math.nan, math.nan, math.nan, 0.0, n)
    # for an even count, the geometric mean of the middle two: a ratio's median then inverts
    # with the ratio (reckon / peer is exactly 1 / (peer / reckon)), which the mean does not
    m = n // 2
    mid = ratios[m] if n % 2 else math.sqrt(ratios[m - 1] * ratios[m])
    if n < 2:
        return Paired(mid, mid, mid, 0.0, n)
    k, coverage = median_interval(n, confidence)
    return Paired(mid, ratios[k - 1], ratios[n - k], coverage, n)


@dataclass(frozen=True)
class Spread:
    """One figure measured once per round: the rounds' median and a confidence interval for it."""

    median: float
    low: float
    high: float
    coverage: float
    rounds: int

    def __str__(self) -> str:
        if self.rounds < 2:
            return f"{self.median:8.3f}"
        return f"{self.median:8.3f} [{self.low:.2f}-{self.high:.2f}]"


def spread(values: list[float], confidence: float = 0.9) -> Spread:
    """The median of ``values`` (one per round) with the distribution-free interval that
    brackets it with at least ``confidence`` (see :func:`median_interval`)."""
    if not values:
        raise ValueError("need at least one round")
    v = sorted(values)
    n = len(v)
    mid = v[n // 2] if n % 2 else (v[n // 2 - 1] + v[n // 2]) / 2
    if n < 2:
        return Spread(mid, mid, mid, 0.0, n)
    k, coverage = median_interval(n, confidence)
    return Spread(mid, v[k - 1], v[n - k], coverage, n)
