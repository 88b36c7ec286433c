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
- Ratio of two medians (a speedup): its 95 % interval is a percentile bootstrap, each side resampled with
  replacement on its own, RESAMPLES times from a fixed seed (repeatable); with fewer than 2 samples on
  either side it is NaN.
"""

from __future__ import annotations

import math
import random
import statistics
from collections.abc import Hashable, Mapping, Sequence
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


def median_ci_ranks(n: int, level: float = CI_LEVEL) -> tuple[int, int, float]:
    """1-based ranks (k, n + 1 - k) of the order statistics bounding the median with coverage >= level,
    the narrowest such symmetric pair, and its exact coverage 1 - 2 P(B <= k - 1), B ~ Binomial(n, 1/2).
    Below the n where any pair reaches `level`: (1, n) and its lower coverage."""
    if n < 1:
        raise ValueError("no samples")
    total = 2**n
    k, term, tail = 1, 1, 1  # term = C(n, k - 1); tail = 2**n P(B <= k - 1), exact integers
    while k + 1 <= (n + 1) // 2:
        next_term = term * (n - k + 1) // k  # C(n, k)
        if 1 - 2 * (tail + next_term) / total < level:
            break
        k, term, tail = k + 1, next_term, tail + next_term
    return k, n + 1 - k, max(0.0, 1 - 2 * tail / total)


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
