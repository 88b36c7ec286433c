"""Little's law: the mean number of requests in the system equals the achieved rate times the mean time in it.

Setup: Poisson arrivals at 12 requests/s on two runners of two slots each (child processes, tests/load_fakes.py)
with exponential service times of mean 0.15 s (utilisation 12 x 0.15 / 4 = 45 %, so queues form at times);
warm-up 5 s, steady window W = 60 s, cool-down 5 s (so the window's last requests meet the same load).
- mean concurrency L: the time-average over the window of the requests in the system (from intended start to
  end, so the generator's queue counts), i.e. the sum of each request's time in the system within the window / W;
- achieved rate X: the requests ending in the window / W;
- mean end-to-end time R: over the requests whose intended start lies in the window.
Little's law L = X R holds up to the window's edges (requests straddling them, about R / W of it). Target: L
and X R within 2 %.

Usage: python tests/benchmarks/littles_law.py [--seed 11]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from load_fakes import NS, FakeRunner, Script, fake_point  # noqa: E402

from mpibench.load.generator import run_point  # noqa: E402
from mpibench.load.schedule import bounds  # noqa: E402
from mpibench.protocol import OK, LoadShape, Phases  # noqa: E402

RATE, SERVICE_S, RUNNERS, SLOTS = 12.0, 0.15, 2, 2


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seed", type=int, default=11)
    args = parser.parse_args()
    phases = Phases(warmup_s=5, duration_s=60, cooldown_s=5, drain_s=30)
    point = fake_point(LoadShape("open", rate=RATE, arrivals="poisson"), phases, runners=RUNNERS, slots=SLOTS)
    runners = [FakeRunner(Script(SERVICE_S, exponential=True, seed=args.seed + i), slots=SLOTS, cores=point.cores)
               for i in range(RUNNERS)]
    try:
        reply = run_point(point, runners)
    finally:
        for runner in runners:
            runner.close()
    edges = bounds(phases)
    start, end, window = edges.warmup, edges.steady, phases.duration_s
    done = [r for r in reply.requests if r.status == OK]
    intended = np.array([r.intended_ns for r in done])
    ended = np.array([r.end_ns for r in done])
    concurrency = np.sum(np.clip(np.minimum(ended, end) - np.maximum(intended, start), 0, None)) / NS / window
    rate = np.sum((ended >= start) & (ended < end)) / window
    in_window = (intended >= start) & (intended < end)
    e2e = np.mean(ended[in_window] - intended[in_window]) / NS
    error = concurrency / (rate * e2e) - 1
    print(f"{len(reply.requests)} requests ({len(done)} ok), Poisson {RATE:g}/s on {RUNNERS} runners x {SLOTS} "
          f"slots, exponential service mean {SERVICE_S:g} s, {window:g} s window")
    print(f"mean concurrency {concurrency:.4f}; achieved rate {rate:.3f}/s x mean e2e {e2e:.4f} s = "
          f"{rate * e2e:.4f}: {100 * error:+.2f} % ({'within' if abs(error) <= 0.02 else 'NOT within'} 2 %)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
