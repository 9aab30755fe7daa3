import math

import numpy as np
import pytest

from mipo.behaviour import wilson_ci
from mipo.evaluation.stats import bootstrap_ci, interval, newcombe_paired_ci, paired_diff_ci


def test_bootstrap_ci_is_seeded_and_covers_the_mean():
    x = [1.0] * 30 + [0.0] * 70
    a, b = bootstrap_ci(x, 2000, seed=1), bootstrap_ci(x, 2000, seed=1)
    assert a == b and a[0] < 0.3 < a[1]
    # percentile bootstrap of a proportion: close to the normal approximation 0.3 ± 1.96·sqrt(.3·.7/100)
    half = 1.96 * math.sqrt(0.3 * 0.7 / 100)
    assert abs(a[0] - (0.3 - half)) < 0.02 and abs(a[1] - (0.3 + half)) < 0.02
    assert bootstrap_ci(x, 2000, seed=2) != a
    assert bootstrap_ci([0.5], 1000) is None and bootstrap_ci(x, 0) is None
    assert bootstrap_ci([None, 1.0, 0.0, None], 100) is not None  # None values are left out
    assert bootstrap_ci([2.0] * 10, 100) == [2.0, 2.0]


def test_paired_ci_is_narrower_than_unpaired_for_correlated_models():
    rng = np.random.default_rng(0)
    base = rng.normal(0, 1, 200)
    trained = base + 0.1 + rng.normal(0, 0.05, 200)  # same items, small consistent gain
    lo, hi = paired_diff_ci(trained.tolist(), base.tolist(), 2000, seed=0)
    assert 0.08 < lo < 0.1 < hi < 0.12
    b, t = bootstrap_ci(base.tolist(), 2000, 0), bootstrap_ci(trained.tolist(), 2000, 0)
    assert (hi - lo) < (b[1] - b[0]) / 5 and (hi - lo) < (t[1] - t[0]) / 5
    assert paired_diff_ci([1.0, None, 2.0], [0.0, 5.0, 1.0], 100, 0) == [1.0, 1.0]  # the None pair is dropped


def test_zero_of_n_does_not_collapse():
    """At 0 correct of 60 the bootstrap says [0, 0]; Wilson and Newcombe keep an honest width."""
    zeros = [0.0] * 60
    assert bootstrap_ci(zeros, 1000) == [0.0, 0.0]
    lo, hi = interval(zeros, 1000)
    assert lo == 0.0 and 0.05 < hi < 0.07
    lo, hi = paired_diff_ci(zeros, zeros, 1000)
    assert lo == pytest.approx(-hi) and 0.05 < hi < 0.07
    assert interval([0.5, 1.0, 0.0], 200) == bootstrap_ci([0.5, 1.0, 0.0], 200)  # not 0/1: the bootstrap


def test_newcombe_without_correlation_is_square_and_add_of_wilson():
    """With φ = 0 (a margin empty, or ad − bc within n/2 of 0) the interval is θ ∓ the root-sum-square of the Wilson
    half-widths on each side (Newcombe's unpaired method 10)."""
    after = [1] * 5 + [0] * 15 + [1] * 5 + [0] * 15   # both 1: 5, before only: 15, after only: 5, neither: 15
    before = [1] * 5 + [1] * 15 + [0] * 5 + [0] * 15
    a, b, c, d = 5, 5, 15, 15
    assert a * d - b * c == 0
    n = len(after)
    p1, p2 = sum(after) / n, sum(before) / n
    (l1, u1), (l2, u2) = wilson_ci(sum(after), n), wilson_ci(sum(before), n)
    lo, hi = newcombe_paired_ci(after, before)
    assert lo == pytest.approx(p1 - p2 - math.hypot(p1 - l1, u2 - p2))
    assert hi == pytest.approx(p1 - p2 + math.hypot(u1 - p1, p2 - l2))
    assert newcombe_paired_ci(before, after) == pytest.approx([-hi, -lo])  # swapping the models negates it


def test_newcombe_covers_the_true_difference():
    """Coverage of the nominal 95% on correlated pairs (simulated, seeded), and narrower than unpaired."""
    rng = np.random.default_rng(0)
    n, hits, width = 120, 0, []
    for _ in range(1000):
        base = rng.random(n) < 0.15
        flip = rng.random(n)
        after = np.where(base, flip > 0.3, flip < 0.10)   # P(after) = 0.15·0.7 + 0.85·0.10 = 0.19
        lo, hi = newcombe_paired_ci(after.astype(int).tolist(), base.astype(int).tolist())
        hits += lo <= 0.04 <= hi
        width.append(hi - lo)
    assert 0.93 <= hits / 1000 <= 0.985
    (l1, u1), (l2, u2) = wilson_ci(0.19 * n, n), wilson_ci(0.15 * n, n)
    assert np.mean(width) < math.hypot(u1 - l1, u2 - l2)


def test_gained_lost_and_exact_mcnemar():
    from mipo.evaluation.stats import gained_lost

    # 30 items gained, 12 lost (the probe): the exact two-sided binomial p of 12 or fewer of 42 at 1/2
    after = [1] * 30 + [0] * 12 + [1] * 200 + [0] * 258
    before = [0] * 30 + [1] * 12 + [1] * 200 + [0] * 258
    got = gained_lost(after, before)
    p = 2 * sum(math.comb(42, k) for k in range(13)) / 2 ** 42
    assert got["gained"] == 30 and got["lost"] == 12 and got["mcnemar_p"] == pytest.approx(p)
    assert 0.005 < got["mcnemar_p"] < 0.01
    assert gained_lost([1, 0, 1], [1, 0, 1]) == {"gained": 0, "lost": 0, "mcnemar_p": 1.0}
    assert gained_lost([1, None, 0], [0, 1, None]) == {"gained": 1, "lost": 0, "mcnemar_p": 1.0}
    assert gained_lost([0.5, 1.0], [0.0, 1.0]) is None  # not 0/1: no counts
