"""Coordinated omission: a runner that stalls for 2 s once, under a constant-rate open loop, must show in the p99.

Setup: requests arrive every 1/r s (constant arrivals, r = 10/s) at one runner with one slot whose service time is
s = 0.05 s (a child process, tests/load_fakes.py), which stalls (makes no progress) for D = 2 s from the intended
start Y = 20 s of one request. Warm-up 1 s, steady window W = 60 s: n = r W = 600 requests.

Analysis. Before the stall the runner is idle when each request arrives (s < 1/r): e2e = s. The request arriving
at Y is held by the stall and ends at Y + D + s. The m-th request after it arrives at Y + m/r and, while the
backlog lasts, starts when its predecessor ends: it ends at Y + D + (m + 1) s, so its end-to-end time from the
intended start is e2e_m = D + s - m (1/r - s), for m = 0, 1, ... while this exceeds s, i.e. for M = D / (1/r - s)
= 40 requests; every other request takes s. The top of the sorted sample is thus the arithmetic sequence
D + s - m d, d = 1/r - s, and numpy's p99 (linear interpolation at rank 0.99 (n - 1)) lies q = 0.01 (n - 1) steps
below its top:
    p99 = D + s - 0.01 (n - 1) (1/r - s) = 2.05 - 5.99 x 0.05 = 1.7505 s (n = 600),
valid while 0.01 (n - 1) + 1 < M. Target: the measured p99 of end-to-end time from the intended start within 5 %.

The omission: a tester that sends each request only when the server can take it (a closed loop, or latency
measured from when the request was served) times each request from its admission: every request takes s (the
runner admits the one caught by the stall when the stall ends), so its p99 is s = 0.05 s: the 2 s stall
disappears. Printed for comparison: the p99 and maximum of end - admission over the same requests.
Percentiles are numpy's (linear interpolation) for now.

Usage: python tests/benchmarks/coordinated_omission.py
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from load_fakes import NS, FakeRunner, Script, fake_point  # noqa: E402

from mpibench.load.generator import run_point  # noqa: E402
from mpibench.protocol import LoadShape, Phases  # noqa: E402
from mpibench.stats import quantile  # noqa: E402

RATE, SERVICE_S, STALL_S, STALL_AT_S, WARMUP_S, WINDOW_S = 10.0, 0.05, 2.0, 20.0, 1.0, 60.0


def analytic_p99(n: int) -> float:
    """p99 (numpy's linear interpolation) of n end-to-end times with the stall's backlog in them."""
    step = 1 / RATE - SERVICE_S
    q = 0.01 * (n - 1)
    assert q + 1 < STALL_S / step, "the p99 falls outside the backlog: lengthen the stall or shorten the window"
    return STALL_S + SERVICE_S - q * step


def main() -> int:
    t0 = time.monotonic_ns() + NS // 2  # set ahead, so that the stall's time is known to the runner
    script = Script(SERVICE_S, stall_from_ns=t0 + round(STALL_AT_S * NS), stall_s=STALL_S)
    point = fake_point(LoadShape("open", rate=RATE, arrivals="constant"),
                       Phases(warmup_s=WARMUP_S, duration_s=WINDOW_S, drain_s=10))
    runner = FakeRunner(script, slots=1, cores=point.cores)
    try:
        reply = run_point(point, [runner], t0_ns=t0)
    finally:
        runner.close()
    steady = [r for r in reply.requests if r.phase == "steady"]
    e2e = np.array([r.end_ns - r.intended_ns for r in steady]) / NS
    served = np.array([r.end_ns - r.admit_ns for r in steady]) / NS
    expected = analytic_p99(len(steady))
    measured = quantile(e2e, 0.99).value  # the p99 mpibench reports (nearest rank)
    error = measured / expected - 1
    print(f"{len(steady)} steady requests at {RATE:g}/s, service {SERVICE_S:g} s, one stall of {STALL_S:g} s at "
          f"{STALL_AT_S:g} s; the longest end-to-end time {e2e.max():.4f} s (D + s = {STALL_S + SERVICE_S:g} s)")
    print(f"p99 end-to-end from the intended start: {measured:.4f} s, analytic {expected:.4f} s: "
          f"{100 * error:+.2f} % ({'within' if abs(error) <= 0.05 else 'NOT within'} 5 %)")
    print(f"p99 from admission (what dispatch-when-served would have shown): {quantile(served, 0.99).value:.4f} s; "
          f"max {served.max():.3f} s; p50 {np.median(e2e):.4f} s from the intended start")
    return 0


if __name__ == "__main__":
    sys.exit(main())
