"""kendall_tau (tau-b) and spearman_rho against hand-computed cases and scipy.stats."""
import math

import numpy as np
import pytest

from Paddle_Cream.search.rank_correlation import average_ranks, kendall_tau, spearman_rho


def test_hand_computed_cases():
    assert kendall_tau([1, 2, 3], [1, 2, 3]) == 1.
    assert kendall_tau([1, 2, 3], [3, 2, 1]) == -1.
    assert kendall_tau([1, 2, 3, 4], [1, 3, 2, 4]) == pytest.approx(4 / 6)
    # ties: x = [1, 1, 2], y = [1, 2, 3] -> S = 2, untied pairs 2 and 3 -> 2 / sqrt(6)
    assert kendall_tau([1, 1, 2], [1, 2, 3]) == pytest.approx(2 / math.sqrt(6))
    assert list(average_ranks([10, 20, 10, 30])) == [1.5, 3., 1.5, 4.]
    assert spearman_rho([1, 2, 3, 4], [1, 3, 2, 4]) == pytest.approx(0.8)
    assert math.isnan(kendall_tau([1, 1], [1, 2])) and math.isnan(spearman_rho([1, 1], [1, 2]))


def test_matches_scipy_with_ties():
    stats = pytest.importorskip('scipy.stats')
    rng = np.random.RandomState(0)
    for n in (3, 5, 30):
        for _ in range(20):
            x, y = rng.randint(0, 6, n).astype(float), rng.randint(0, 6, n).astype(float)
            if len(set(x)) < 2 or len(set(y)) < 2:
                continue
            assert kendall_tau(x, y) == pytest.approx(stats.kendalltau(x, y)[0], abs=1e-12)
            assert spearman_rho(x, y) == pytest.approx(stats.spearmanr(x, y)[0], abs=1e-12)
