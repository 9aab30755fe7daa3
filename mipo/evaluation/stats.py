"""95% confidence intervals for means and paired differences over items.

A 0/1 metric (violation, cue, broken, correct) gets Wilson's score interval, and a paired difference of two 0/1
metrics Newcombe's (1998) square-and-add interval built from them: both stay honest at 0 of n, where a percentile
bootstrap collapses to [0, 0]. Every other metric gets a seeded percentile bootstrap over items."""
from __future__ import annotations

import math
from statistics import fmean

import numpy as np

from ..behaviour import wilson_ci

METHOD = "wilson (0/1 metrics), newcombe paired (their differences), percentile bootstrap (others)"


def mean_present(values) -> float | None:
    """Mean of the values that are not None (a metric can be missing for an item); None if none are."""
    values = [v for v in values if v is not None]
    return fmean(values) if values else None


def binary(values) -> bool:
    return bool(values) and all(v in (0, 1) for v in values)


def interval(values, n_resamples: int = 1000, seed: int = 0, level: float = 0.95) -> list[float] | None:
    """CI of the mean of the values that are not None: Wilson for a 0/1 metric, else the percentile bootstrap."""
    x = [v for v in values if v is not None]
    return wilson_ci(sum(x), len(x), level) if binary(x) else bootstrap_ci(x, n_resamples, seed, level)


def bootstrap_ci(values, n_resamples: int = 1000, seed: int = 0, level: float = 0.95) -> list[float] | None:
    """Percentile bootstrap CI of the mean of `values` (items resampled with replacement).

    None when there is nothing to resample (fewer than 2 values, or n_resamples = 0). Same seed, same interval.
    """
    x = np.asarray([v for v in values if v is not None], dtype=float)
    if len(x) < 2 or n_resamples <= 0:
        return None
    rng = np.random.default_rng(seed)
    means = x[rng.integers(0, len(x), size=(n_resamples, len(x)))].mean(axis=1)
    lo, hi = np.quantile(means, [(1 - level) / 2, 1 - (1 - level) / 2])
    return [float(lo), float(hi)]


def paired_diff_ci(after, before, n_resamples: int = 1000, seed: int = 0, level: float = 0.95) -> list[float] | None:
    """CI of mean(after - before) over the items where both are present, the two kept together per item (so the
    per-item correlation narrows the interval): Newcombe's paired interval for 0/1 metrics, else the bootstrap."""
    both = [(a, b) for a, b in zip(after, before) if a is not None and b is not None]
    if binary([v for p in both for v in p]):
        return newcombe_paired_ci([a for a, _ in both], [b for _, b in both], level)
    return bootstrap_ci([a - b for a, b in both], n_resamples, seed, level)


def newcombe_paired_ci(after, before, level: float = 0.95) -> list[float] | None:
    """Newcombe (1998, Stat. Med. 17:2635, method 10) for p_after - p_before on paired 0/1 outcomes.

    With Wilson intervals (l1, u1) for p1 = p_after and (l2, u2) for p2 = p_before, θ = p1 - p2 and φ the
    correlation of the 2×2 table (a = both 1, b = after only, c = before only, d = neither; ad - bc shrunk
    towards 0 by n/2 when positive, φ = 0 when a margin is empty):
    lower = θ - sqrt((p1-l1)² - 2φ(p1-l1)(u2-p2) + (u2-p2)²), upper = θ + sqrt((u1-p1)² - 2φ(u1-p1)(p2-l2) + (p2-l2)²).
    """
    n = len(after)
    if n == 0:
        return None
    a = sum(x and y for x, y in zip(after, before))
    b, c = sum(after) - a, sum(before) - a
    d = n - a - b - c
    p1, p2 = (a + b) / n, (a + c) / n
    (l1, u1), (l2, u2) = wilson_ci(a + b, n, level), wilson_ci(a + c, n, level)
    margins = (a + b) * (c + d) * (a + c) * (b + d)
    cross = a * d - b * c
    cross = max(cross - n / 2, 0) if cross > 0 else cross
    phi = cross / math.sqrt(margins) if margins else 0.0
    theta = p1 - p2
    lower = theta - math.sqrt(max((p1 - l1) ** 2 - 2 * phi * (p1 - l1) * (u2 - p2) + (u2 - p2) ** 2, 0.0))
    upper = theta + math.sqrt(max((u1 - p1) ** 2 - 2 * phi * (u1 - p1) * (p2 - l2) + (p2 - l2) ** 2, 0.0))
    return [max(lower, -1.0), min(upper, 1.0)]


def gained_lost(after, before) -> dict | None:
    """Paired 0/1 outcomes over the items where both are present: items gained (after 1, before 0), items lost
    (after 0, before 1) and McNemar's exact two-sided p-value, the binomial test of gained vs lost at 1/2 (the
    items both models get right or wrong carry no evidence of a difference); None unless both are 0/1."""
    both = [(a, b) for a, b in zip(after, before) if a is not None and b is not None]
    if not binary([v for p in both for v in p]):
        return None
    gained = sum(1 for a, b in both if a > b)
    lost = sum(1 for a, b in both if a < b)
    n, k = gained + lost, min(gained, lost)
    p = min(1.0, 2 * sum(math.comb(n, i) for i in range(k + 1)) / 2 ** n) if n else 1.0
    return {"gained": gained, "lost": lost, "mcnemar_p": p}
