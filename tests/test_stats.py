import math
import random

import pytest

from mpibench.stats import EMPTY, describe, median_ci_ranks, noisy


def test_known_values_of_a_textbook_sample():
    s = describe([2, 4, 4, 4, 5, 5, 7, 9])
    assert (s.n, s.median, s.mean, s.min, s.max) == (8, 4.5, 5.0, 2.0, 9.0)
    assert s.stdev == pytest.approx(math.sqrt(32 / 7))  # sample standard deviation, n - 1
    assert s.cv == pytest.approx(math.sqrt(32 / 7) / 5)
    assert s.mad == 0.5  # raw: median of |x - 4.5| = .5 .5 .5 .5 .5 2.5 2.5 4.5
    assert (s.ci_low, s.ci_high, s.ci_level) == (2.0, 9.0, 1 - 2 / 256)
    assert s.outliers == (0, 6, 7)  # beyond 3 * 1.4826 * 0.5 = 2.22 of the median


def test_a_slow_repetition_is_flagged_and_kept():
    samples = [1.00, 1.01, 0.99, 1.02, 0.98, 1.00, 1.50]
    s = describe(samples)
    assert s.outliers == (6,)
    assert s.n == 7 and s.max == 1.5 and s.mean == pytest.approx(sum(samples) / 7)  # kept in every statistic
    assert s.median == 1.00 and s.cv > 0.05


def test_zero_mad_falls_back_to_the_mean_absolute_deviation():
    assert describe([1, 1, 1, 1, 100]).outliers == (4,)
    constant = describe([3, 3, 3])
    assert constant.outliers == () and constant.stdev == 0 and constant.cv == 0 and constant.mad == 0


def test_one_sample_and_none():
    s = describe([2.5])
    assert (s.n, s.median, s.mean, s.min, s.max, s.mad, s.outliers) == (1, 2.5, 2.5, 2.5, 2.5, 0.0, ())
    assert all(math.isnan(v) for v in (s.stdev, s.cv, s.ci_low, s.ci_high, s.ci_level))
    assert describe([]) is EMPTY and EMPTY.n == 0 and math.isnan(EMPTY.median)


@pytest.mark.parametrize("n, ranks, level", [
    (2, (1, 2), 0.5), (3, (1, 3), 0.75), (5, (1, 5), 0.9375), (6, (1, 6), 0.96875),
    (10, (2, 9), 0.978515625), (20, (6, 15), 0.9586105346679688), (100, (40, 61), 0.9647997997822952),
])
def test_median_ci_ranks_match_the_binomial_table(n, ranks, level):
    low, high, coverage = median_ci_ranks(n)
    assert (low, high) == ranks and coverage == pytest.approx(level)


@pytest.mark.parametrize("n", range(1, 80))
def test_median_ci_is_the_narrowest_pair_with_95_percent_coverage(n):
    def coverage(k):  # P(x_(k) <= true median <= x_(n+1-k)) = P(k <= B <= n - k), B ~ Bin(n, 1/2)
        return sum(math.comb(n, i) for i in range(k, n - k + 1)) / 2**n

    low, high, level = median_ci_ranks(n)
    assert high == n + 1 - low and level == pytest.approx(coverage(low))
    if n >= 6:
        assert level >= 0.95 and (low + 1 > high - 1 or coverage(low + 1) < 0.95)
    else:
        assert low == 1 and level < 0.95


def test_ci_uses_the_order_statistics_whatever_the_sample_order():
    values = list(range(1, 11))
    random.Random(1).shuffle(values)
    s = describe(values)
    assert (s.ci_low, s.ci_high, s.median) == (2.0, 9.0, 5.5)


def test_samples_must_be_finite():
    with pytest.raises(ValueError):
        describe([1.0, float("nan")])


def test_noisy_names_the_cells_above_five_percent():
    cells = {"steady": describe([1.0, 1.01, 0.99]), "noisy": describe([1.0, 1.2, 0.8]), "single": describe([1.0])}
    assert noisy(cells) == ["noisy"]
    assert noisy(cells, limit=0.001) == ["steady", "noisy"]


def test_the_ratio_interval_is_a_repeatable_bootstrap_that_brackets_the_ratio_of_medians():
    from mpibench.stats import ratio_ci

    base, fast = [2.0, 2.1, 1.9, 2.05, 1.95], [1.0, 1.05, 0.98, 1.02, 0.99]
    low, high = ratio_ci(base, fast)
    assert low < 2.0 / 1.0 < high and (low, high) == ratio_ci(base, fast)
    assert high - low < 0.5
    assert all(math.isnan(x) for x in ratio_ci([2.0], fast))


def test_the_interval_of_a_ratio_of_sums_of_medians_needs_two_samples_in_every_set():
    from mpibench.stats import ratio_ci, sum_ratio_ci

    a, b = [2.0, 2.1, 1.9, 2.05], [1.0, 1.1, 0.95, 1.02]
    assert sum_ratio_ci([a], [b]) == ratio_ci(a, b)
    low, high = sum_ratio_ci([a, a], [b, b])
    assert low < 4.0 / 2.0 < high
    assert all(math.isnan(v) for v in sum_ratio_ci([a, [1.0]], [b, b]))
