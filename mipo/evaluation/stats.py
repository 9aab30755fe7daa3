"""Seeded percentile-bootstrap 95% confidence intervals for means and paired differences (numpy)."""
from __future__ import annotations

from statistics import fmean

import numpy as np


def mean_present(values) -> float | None:
    """Mean of the values that are not None (a metric can be missing for an item); None if none are."""
    values = [v for v in values if v is not None]
    return fmean(values) if values else None


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
    """CI of mean(after - before) over items, resampling items (pairs) together: this keeps the per-item
    correlation between the two models, so the interval is narrower than two independent intervals suggest."""
    diffs = [a - b for a, b in zip(after, before) if a is not None and b is not None]
    return bootstrap_ci(diffs, n_resamples, seed, level)
