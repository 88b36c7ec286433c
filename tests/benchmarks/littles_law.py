"""Little's law: the mean number of requests in the system equals the achieved rate times the mean time in it.

Setup: Poisson arrivals at 12 requests/s on two runners of two slots each (child processes, tests/load_fakes.py)
with exponential service times of mean 0.15 s (utilisation 12 x 0.15 / 4 = 45 %, so queues form at times);
warm-up 5 s, steady window W = 60 s, cool-down 5 s (so the window's last requests meet the same load).
The figures are the load_points row mpibench stores (load/metrics.py summarise): mean_concurrency L, the
time-average over the window of the requests in the system (from intended start to end, so the generator's
queue counts), and littles_concurrency, the window's arrival rate X times the mean end-to-end time R of the
requests whose intended start lies in it. Little's law L = X R holds up to the window's edges (requests
straddling them, about R / W of it). Target: littles_error within 2 %.

Usage: python tests/benchmarks/littles_law.py [--seed 11]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from load_fakes import FakeRunner, Script, fake_point  # noqa: E402

from mpibench.load.generator import run_point  # noqa: E402
from mpibench.load.metrics import summarise  # noqa: E402
from mpibench.protocol import LoadShape, Phases  # noqa: E402

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
    row = summarise(point, reply, {}).point  # the load_points row mpibench stores for this point
    concurrency, littles, error = row["mean_concurrency"], row["littles_concurrency"], row["littles_error"]
    print(f"{len(reply.requests)} requests ({row['completed']} ok in the window), Poisson {RATE:g}/s on {RUNNERS} "
          f"runners x {SLOTS} slots, exponential service mean {SERVICE_S:g} s, {row['window_s']:g} s window")
    print(f"mean concurrency {concurrency:.4f}; arrival rate x mean e2e = {littles:.4f}: {100 * error:+.2f} % "
          f"({'within' if abs(error) <= 0.02 else 'NOT within'} 2 %)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
