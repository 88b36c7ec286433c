"""Overhead: how much of a sweep's wall time is mpibench rather than llama.cpp, and what rank 0 costs.

Runs the default sweep (the builtin SmolLM2-135M, the five study queries, every thread count up to the
cores, 128 tokens) under `mpiexec -n 3`, then reads its results file:
- harness share = (wall time - measured inference - runner starts) / wall time, where wall time is rank 0's
  coordinating loop, measured inference the sum of the tasks' end-to-end times, and runner starts each
  runner's time from process start to model ready (Python and llama.cpp import, model load, context)
  counted once, and the engine preflights (a 32-token batch and 4 single tokens, once per worker and
  model) apart. Target: under 3 %. Printed too: the share with only the model loads subtracted, i.e.
  counting the runner processes' start as harness.
- rank 0's CPU share = rank 0's CPU seconds / wall time. Target: under 2 %.
- the per-task gap: on one node, from one task's end to the next task's start (the next task's start
  minus the previous task's start and end-to-end time), median and 90th percentile, over a second sweep
  of 200 two-token tasks (40 repetitions of the five queries at 1 thread). Target: median at most 2 ms.

Usage: python tests/benchmarks/overhead.py [extra `mpibench run` arguments, e.g. --repetitions 3]
"""

from __future__ import annotations

import math
import os
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent


def shares(path: Path) -> dict:
    """The overhead figures of a results file."""
    from mpibench.store.hdf5 import read_results

    results = read_results(path)
    wall = results.attrs["wall_s"]
    rows = [r for r in results.results if r["status"] == "ok"]
    inference = sum(r["e2e_s"] for r in rows)
    runners = {(r["rank"], r["model"], r["threads"], r["runner_start_s"]): r for r in rows}.values()
    starts, loads = sum(r["runner_start_s"] for r in runners), sum(r["load_s"] for r in runners)
    preflights = sum(r["preflight_s"] for r in runners if math.isfinite(r["preflight_s"]))
    return {
        "tasks": len(rows), "wall_s": wall, "inference_s": inference, "starts_s": starts, "loads_s": loads,
        "preflights_s": preflights, "preflight_share": preflights / wall,
        "harness_share": (wall - inference - starts - preflights) / wall,
        "harness_share_with_starts": (wall - inference - loads - preflights) / wall,
        "rank0_cpu_share": results.attrs["coordinator_cpu_s"] / wall,
    }


def task_gaps(path: Path) -> list[float]:
    """Seconds from each task's end to the next task's start on the same node (warmups included)."""
    from mpibench.store.hdf5 import read_results

    by_host: dict[str, list[dict]] = {}
    for row in read_results(path).results:
        if row["status"] == "ok":
            by_host.setdefault(row["hostname"], []).append(row)
    gaps = []
    for rows in by_host.values():
        rows.sort(key=lambda r: r["started_unix"])
        gaps += [b["started_unix"] - (a["started_unix"] + a["e2e_s"]) for a, b in zip(rows, rows[1:])]
    return gaps


def sweep(out: str, *arguments: str) -> None:
    env = dict(os.environ, OMPI_ALLOW_RUN_AS_ROOT="1", OMPI_ALLOW_RUN_AS_ROOT_CONFIRM="1")
    subprocess.run([str(BIN / "mpiexec"), "-n", "3", str(BIN / "mpibench"), "run", "--out", out, "--no-plots",
                    *arguments], check=True, env=env)


def main() -> int:
    sys.path.insert(0, str(ROOT))
    with tempfile.TemporaryDirectory() as tmp:
        sweep(f"{tmp}/run", *sys.argv[1:])
        figures = shares(Path(tmp) / "run" / "results.h5")
        sweep(f"{tmp}/gaps", "--threads", "1", "--max-tokens", "2", "--repetitions", "40")
        gaps = sorted(task_gaps(Path(tmp) / "gaps" / "results.h5"))
    print(f"{figures['tasks']} tasks in {figures['wall_s']:.1f} s: inference {figures['inference_s']:.2f} s, "
          f"runner starts {figures['starts_s']:.2f} s (of which model loads {figures['loads_s']:.2f} s), "
          f"engine preflights {figures['preflights_s']:.2f} s ({100 * figures['preflight_share']:.2f} %)")
    print(f"harness share {100 * figures['harness_share']:.2f} % (target < 3 %); counting runner starts "
          f"beyond the model load as harness: {100 * figures['harness_share_with_starts']:.2f} %")
    print(f"rank 0 CPU share {100 * figures['rank0_cpu_share']:.2f} % (target < 2 %)")
    print(f"per-task gap over {len(gaps)} consecutive two-token tasks: median {1e3 * gaps[len(gaps) // 2]:.2f} ms, "
          f"p90 {1e3 * gaps[int(0.9 * len(gaps))]:.2f} ms (target: median <= 2 ms)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
