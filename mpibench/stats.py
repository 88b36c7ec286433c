"""Statistics of one cell's samples (pure, stdlib): what a benchmark engineer needs to trust a median.

- The median is the reported value; its 95 % confidence interval is distribution-free: the pair of order
  statistics (x_(k), x_(n+1-k)) with the largest k whose binomial coverage is still >= 95 %. From n = 6 on
  such a pair exists; for 2 <= n <= 5 the interval is [min, max] and `ci_level` says how much less than
  95 % it covers (n = 5: 93.8 %, n = 3: 75 %); for n < 2 it is NaN.
- MAD is the raw median absolute deviation, median(|x - median|), in the metric's unit (not scaled).
- Outliers: |x - median| > 3 * 1.4826 * MAD (1.4826 * MAD estimates the standard deviation of normal
  data). When MAD is 0 (over half the samples equal) the scale is 1.2533 * mean absolute deviation from
  the median instead (Iglewicz and Hoaglin). Outliers are flagged, never dropped.
- CV = sample standard deviation (n - 1) / mean.
- Any other quantile (load tests' p50 ... p99) is the nearest rank, the ceil(q n)-th smallest; its 95 % interval
  is distribution-free too: order statistics from Binomial(n, q), 2.5 % left out on each side where both sides
  can, else the sample's extreme on the short side (the p99 has one from n = 299 on); NaN below that.
- Ratio of two medians (a speedup): its 95 % interval is a percentile bootstrap, each side resampled with
  replacement on its own, RESAMPLES times from a fixed seed (repeatable); with fewer than 2 samples on
  either side it is NaN.
"""

from __future__ import annotations

import bisect
import itertools
import math
import random
import statistics
from collections.abc import Callable, Hashable, Mapping, Sequence
from dataclasses import dataclass

CI_LEVEL = 0.95
OUTLIER_SCALES = 3.0  # flagged beyond this many robust standard deviations from the median
MAD_TO_SD = 1.4826
MEAN_AD_TO_SD = 1.2533
CV_LIMIT = 0.05
RESAMPLES = 2000


@dataclass(frozen=True)
class Stats:
    """Statistics of a list of finite samples; NaN where undefined (no samples, or one for spreads)."""

    n: int
    median: float
    mean: float
    stdev: float  # sample standard deviation (n - 1 in the denominator)
    mad: float  # raw median absolute deviation, unscaled
    ci_low: float  # confidence interval of the median ...
    ci_high: float
    ci_level: float  # ... and its exact coverage (>= 0.95 from n = 6 on)
    min: float
    max: float
    cv: float  # stdev / mean
    outliers: tuple[int, ...]  # indices into the samples, in order


NAN = float("nan")
EMPTY = Stats(0, NAN, NAN, NAN, NAN, NAN, NAN, NAN, NAN, NAN, NAN, ())


def _binomial_tails(n: int, q: float) -> tuple[Callable[[int], float], Callable[[int], float]]:
    """below(k) = P(B < k) and above(k) = P(B >= k), B ~ Binomial(n, q), for ranks k = 0 .. n + 1. Terms further
    than 40 standard deviations (+ 40) from the mean, below e**-700, are taken as 0, so that n can be large."""
    spread = 40 * math.sqrt(n * q * (1 - q)) + 40
    first, last = max(0, math.floor(n * q - spread)), min(n, math.ceil(n * q + spread))
    log_q, log_p = (math.log(q) if q > 0 else -math.inf), (math.log1p(-q) if q < 1 else -math.inf)
    top = math.lgamma(n + 1)
    pmf = [math.exp(top - math.lgamma(i + 1) - math.lgamma(n - i + 1) + (i * log_q if i else 0)
                    + ((n - i) * log_p if n - i else 0)) for i in range(first, last + 1)]
    below = [0.0, *itertools.accumulate(pmf)]  # below[j] = P(first <= B < first + j)
    above = [*itertools.accumulate(reversed(pmf))][::-1] + [0.0]  # P(B >= first + j), summed from the top
    return (lambda k: below[min(max(k - first, 0), len(pmf))]), (lambda k: above[min(max(k - first, 0), len(pmf))])


def quantile_ci_ranks(n: int, q: float, level: float = CI_LEVEL) -> tuple[int, int, float]:
    """1-based ranks (low, high) of the order statistics bounding the q-quantile with coverage >= level, and the
    coverage P(x_(low) <= quantile < x_(high)) = 1 - P(B < low) - P(B >= high), B ~ Binomial(n, q) (the samples
    below the quantile). Each tail gets (1 - level) / 2 where both can; where one cannot (an extreme quantile or
    few samples: the sample's extreme still leaves more than that out), that side is the extreme and the other
    side has the rest. When no pair reaches `level`: (1, n) and its lower coverage."""
    if n < 1:
        raise ValueError("no samples")
    below, above = _binomial_tails(n, q)
    ranks = range(1, n + 1)
    alpha = 1 - level

    def lowest(budget: float) -> int | None:  # the largest rank leaving at most `budget` below (below rises)
        k = bisect.bisect_right(ranks, budget, key=below)
        return k if k else None

    def highest(budget: float) -> int | None:  # the smallest rank leaving at most `budget` above (above falls)
        k = bisect.bisect_left(ranks, -budget, key=lambda r: -above(r)) + 1
        return k if k <= n else None

    low, high = lowest(alpha / 2), highest(alpha / 2)
    if low is None and high is not None:
        low, high = 1, highest(alpha - below(1))
    elif high is None and low is not None:
        low, high = lowest(alpha - above(n)), n
    if low is None or high is None:
        low, high = 1, n
    return low, high, max(0.0, 1 - below(low) - above(high))


def median_ci_ranks(n: int, level: float = CI_LEVEL) -> tuple[int, int, float]:
    """1-based ranks (k, n + 1 - k) of the order statistics bounding the median with coverage >= level (the
    narrowest such symmetric pair) and its coverage: quantile_ci_ranks at q = 1/2, whose tails are equal.
    Below the n where any pair reaches `level`: (1, n) and its lower coverage."""
    return quantile_ci_ranks(n, 0.5, level)


@dataclass(frozen=True)
class Quantile:
    """A sample quantile (nearest rank: the ceil(q n)-th smallest) and its distribution-free interval; low and
    high are NaN where no pair of order statistics reaches the level (too few samples), and level is then
    the coverage [min, max] would have had."""

    n: int
    value: float
    low: float
    high: float
    level: float


def quantile(samples: Sequence[float], q: float, level: float = CI_LEVEL) -> Quantile:
    """The q-quantile of finite `samples` (0 < q < 1) with its interval (quantile_ci_ranks); NaN when empty."""
    ordered = sorted(samples)
    n = len(ordered)
    if n == 0:
        return Quantile(0, NAN, NAN, NAN, NAN)
    low, high, coverage = quantile_ci_ranks(n, q, level)
    value = ordered[max(1, math.ceil(q * n - 1e-9)) - 1]  # q * n may land a rounding error above an integer
    if coverage < level:
        return Quantile(n, value, NAN, NAN, coverage)
    return Quantile(n, value, ordered[low - 1], ordered[high - 1], coverage)


def outlier_indices(samples: Sequence[float], median: float, mad: float) -> tuple[int, ...]:
    """Indices of the samples beyond OUTLIER_SCALES robust standard deviations of the median."""
    scale = MAD_TO_SD * mad
    if scale == 0:
        scale = MEAN_AD_TO_SD * statistics.fmean(abs(x - median) for x in samples)
    if scale == 0:
        return ()
    return tuple(i for i, x in enumerate(samples) if abs(x - median) > OUTLIER_SCALES * scale)


def describe(samples: Sequence[float]) -> Stats:
    """All statistics of `samples` (finite numbers; order kept for the outlier indices)."""
    values = [float(x) for x in samples]
    if any(not math.isfinite(x) for x in values):
        raise ValueError("samples must be finite numbers")
    n = len(values)
    if n == 0:
        return EMPTY
    ordered = sorted(values)
    median = statistics.median(ordered)
    mean = statistics.fmean(ordered)
    stdev = statistics.stdev(ordered) if n > 1 else NAN
    mad = statistics.median(abs(x - median) for x in ordered)
    if n > 1:
        low, high, level = median_ci_ranks(n)
        ci = (ordered[low - 1], ordered[high - 1], level)
    else:
        ci = (NAN, NAN, NAN)
    cv = stdev / mean if n > 1 and mean != 0 else NAN
    return Stats(n, median, mean, stdev, mad, *ci, ordered[0], ordered[-1], cv,
                 outlier_indices(values, median, mad))


def noisy(stats: Mapping[Hashable, Stats], limit: float = CV_LIMIT) -> list[Hashable]:
    """The keys (cells) whose coefficient of variation exceeds `limit` (5 % by default), in order."""
    return [key for key, s in stats.items() if not math.isnan(s.cv) and s.cv > limit]


def ratio_ci(numerator: Sequence[float], denominator: Sequence[float], level: float = CI_LEVEL,
             resamples: int = RESAMPLES, seed: int = 0) -> tuple[float, float]:
    """Percentile-bootstrap interval of median(numerator) / median(denominator); (NaN, NaN) when either
    side has fewer than 2 samples."""
    return sum_ratio_ci([numerator], [denominator], level, resamples, seed)


def sum_ratio_ci(numerators: Sequence[Sequence[float]], denominators: Sequence[Sequence[float]],
                 level: float = CI_LEVEL, resamples: int = RESAMPLES, seed: int = 0) -> tuple[float, float]:
    """Percentile-bootstrap interval of sum(medians of numerators) / sum(medians of denominators), each sample
    set resampled on its own; (NaN, NaN) when any set has fewer than 2 samples."""
    if min(map(len, [*numerators, *denominators]), default=0) < 2:
        return NAN, NAN
    draw = random.Random(seed).choices

    def total(sets: Sequence[Sequence[float]]) -> float:
        return sum(statistics.median(draw(s, k=len(s))) for s in sets)

    ratios = sorted(total(numerators) / total(denominators) for _ in range(resamples))
    tail = (1 - level) / 2
    return ratios[int(tail * (resamples - 1))], ratios[math.ceil((1 - tail) * (resamples - 1))]
