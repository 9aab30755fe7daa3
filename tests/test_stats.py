import math

import numpy as np

from mipo.evaluation.stats import bootstrap_ci, paired_diff_ci


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
