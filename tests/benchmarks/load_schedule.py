"""Arrival schedules: do they deliver the rate asked for, and are Poisson arrivals Poisson?

Computes schedules (mpibench/load/schedule.py; pure, no real time) of 60 s at 10000 requests/s, for several seeds:
- the realised rate (arrivals / 60 s) against the offered rate, for constant, Poisson and gamma (k = 0.5 and 4)
  arrivals, and with a 10 s ramp-up (whose arrivals must number rate x 10 s / 2; the 60 s after it, rate x 60 s).
  Target: within 0.5 %. A random process's count has its own spread, a relative sd of CV / sqrt(rate x 60 s)
  (Poisson: 0.13 % here), which is why the rate is high: a bias of the schedule would show in the mean over
  seeds, printed with the worst seed and that sd.
- Poisson inter-arrival gaps against the exponential of the offered rate: the Kolmogorov-Smirnov statistic D
  and its p-value (the Kolmogorov distribution with Stephens' small-sample correction,
  P(K > x) = 2 sum_j (-1)^(j-1) exp(-2 j^2 x^2) at x = (sqrt(n) + 0.12 + 0.11 / sqrt(n)) D). Target: p > 0.05
  for each seed (p-values of a correct schedule are uniform: 1 seed in 20 fails); the gaps' CV against 1 / sqrt(k).

Usage: python tests/benchmarks/load_schedule.py [--rate 10000] [--seconds 60] [--seeds 10]
"""

from __future__ import annotations

import argparse
import math
import sys

import numpy as np

from mpibench.load.schedule import NS, arrivals
from mpibench.protocol import LoadShape, Phases

TOLERANCE = 0.005


def ks_exponential(gaps_s: np.ndarray, rate: float) -> tuple[float, float]:
    """The KS statistic of gaps against Exp(rate) and its p-value."""
    n, cdf = len(gaps_s), 1.0 - np.exp(-rate * np.sort(gaps_s))
    ranks = np.arange(1, n + 1) / n
    d = float(max(np.max(ranks - cdf), np.max(cdf - (ranks - 1 / n))))
    x = (math.sqrt(n) + 0.12 + 0.11 / math.sqrt(n)) * d
    p = 2 * sum((-1) ** (j - 1) * math.exp(-2 * j * j * x * x) for j in range(1, 101))
    return d, min(1.0, max(0.0, p))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rate", type=float, default=10000.0)
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--seeds", type=int, default=10)
    args = parser.parse_args()
    rate, seconds = args.rate, args.seconds
    print(f"offered {rate:g} requests/s over {seconds:g} s, seeds 1..{args.seeds}")
    kinds = [("constant", 1.0), ("poisson", 1.0), ("gamma", 0.5), ("gamma", 4.0)]
    for kind, k in kinds:
        shape = LoadShape("open", rate=rate, arrivals=kind, gamma_shape=k)
        errors, cvs, tests, ramps = [], [], [], []
        for seed in range(1, args.seeds + 1):
            times = np.fromiter(arrivals(shape, Phases(duration_s=seconds), seed), dtype=np.int64)
            errors.append(len(times) / seconds / rate - 1)
            gaps = np.diff(times) / NS
            cvs.append(gaps.std(ddof=1) / gaps.mean())
            if kind == "poisson":
                tests.append(ks_exponential(gaps, rate))
            ramped = np.fromiter(arrivals(shape, Phases(ramp_up_s=10, duration_s=seconds), seed), dtype=np.int64)
            in_ramp = int(np.sum(ramped < 10 * NS))
            ramps.append((in_ramp / (rate * 5) - 1, (len(ramped) - in_ramp) / seconds / rate - 1))
        name = f"{kind} k={k:g}" if kind == "gamma" else kind
        cv_expected = 0.0 if kind == "constant" else k ** -0.5
        spread = cv_expected / math.sqrt(rate * seconds)
        verdict = "within" if all(abs(e) <= TOLERANCE for e in errors) else "NOT within"
        in_ramp, after_ramp = zip(*ramps)
        print(f"  {name}: realised rate {100 * max(errors, key=abs):+.3f} % off at worst, mean "
              f"{100 * np.mean(errors):+.3f} % (a seed's own sd {100 * spread:.2f} %): {verdict} 0.5 %; gap CV "
              f"{np.mean(cvs):.3f} (expected {cv_expected:.3f}); 10 s ramp: its arrivals "
              f"{100 * max(in_ramp, key=abs):+.3f} % off at worst (sd {100 * cv_expected / math.sqrt(rate * 5):.2f} %), "
              f"the rate after it {100 * max(after_ramp, key=abs):+.3f} %")
        if tests:
            ds, ps = zip(*tests)
            print(f"    KS against Exp({rate:g}/s), {int(rate * seconds) - 1} gaps a seed: D {min(ds):.5f} to "
                  f"{max(ds):.5f}, p = {', '.join(f'{p:.3f}' for p in ps)}: {sum(p > 0.05 for p in ps)} of "
                  f"{len(ps)} seeds pass at 5 % (a true Poisson process fails 1 seed in 20)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
