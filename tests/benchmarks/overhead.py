"""Overhead: how much of a sweep's wall time is mpibench rather than llama.cpp, and what rank 0 costs.

Runs the default sweep (the builtin SmolLM2-135M, the five study queries, every thread count up to the
cores, 128 tokens) under `mpiexec -n 3`, then reads its results file:
- harness share = (wall time - measured inference - model loads) / wall time, where wall time is rank 0's
  coordinating loop, measured inference the sum of the tasks' end-to-end times, and model loads each
  runner's load time counted once. Target: under 3 %.
- rank 0's CPU share = rank 0's CPU seconds / wall time. Target: under 2 %.

Usage: python tests/benchmarks/overhead.py [extra `mpibench run` arguments, e.g. --repetitions 3]
"""

from __future__ import annotations

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
    loads = sum({(r["rank"], r["model"], r["threads"], r["load_s"]): r["load_s"] for r in rows}.values())
    return {
        "tasks": len(rows), "wall_s": wall, "inference_s": inference, "loads_s": loads,
        "harness_share": (wall - inference - loads) / wall,
        "rank0_cpu_share": results.attrs["coordinator_cpu_s"] / wall,
    }


def main() -> int:
    sys.path.insert(0, str(ROOT))
    with tempfile.TemporaryDirectory() as tmp:
        env = dict(os.environ, OMPI_ALLOW_RUN_AS_ROOT="1", OMPI_ALLOW_RUN_AS_ROOT_CONFIRM="1")
        subprocess.run([str(BIN / "mpiexec"), "-n", "3", str(BIN / "mpibench"), "run", "--out", f"{tmp}/run",
                        "--no-plots", *sys.argv[1:]], check=True, env=env)
        figures = shares(Path(tmp) / "run" / "results.h5")
    print(f"{figures['tasks']} tasks in {figures['wall_s']:.1f} s: inference {figures['inference_s']:.1f} s, "
          f"model loads {figures['loads_s']:.1f} s")
    print(f"harness share {100 * figures['harness_share']:.2f} % (target < 3 %)")
    print(f"rank 0 CPU share {100 * figures['rank0_cpu_share']:.2f} % (target < 2 %)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
