"""Fidelity: mpibench's bench mode against llama.cpp's own llama-bench, on the same model and thread counts.

Builds llama-bench from the llama.cpp sources vendored in the llama-cpp-python sdist of the installed
version (downloaded from PyPI once, built into build/fidelity/), then, for many short rounds and each thread
count, runs llama-bench and `mpibench bench` back to back, in alternating order (ABBA). llama-bench runs pinned
as mpibench's runner is: taskset to the task's cores and the same OpenMP placement (OMP_PROC_BIND, OMP_PLACES),
and on llama-cpp-python's own compiled llama.cpp libraries (LD_LIBRARY_PATH), so that only the harness differs.
The ratio is paired: per round, mpibench's median over llama-bench's, and the figure is the median of the
rounds' ratios with its 95 % confidence interval. On a shared VM the machine's speed drifts by 10-20 % over
tens of seconds (block means vary 2.5-4 times more than independent samples would), so two pooled medians
taken minutes apart differ by the drift; a round's two halves, seconds apart, share most of it. Hence many
short rounds: the defaults (40 rounds x 2 repetitions) take about 47 minutes on 2 cores.
Target: every ratio within [0.97, 1.03] for SmolLM2 at 1 and 2 threads.

Usage: python tests/benchmarks/fidelity.py [--threads 1,2] [-p 512] [-n 128] [-r 2] [--rounds 40] [--model PATH]
"""

from __future__ import annotations

import argparse
import importlib.metadata
import json
import os
import shutil
import statistics
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
BUILD = ROOT / "build" / "fidelity"
BIN = Path(sys.executable).parent


def llama_tool(target: str) -> Path:
    """A llama.cpp tool's binary (llama-bench, llama-batched-bench) built from the installed llama-cpp-python's
    vendored llama.cpp, once per version."""
    version = importlib.metadata.version("llama-cpp-python")
    binary = BUILD / f"{target}-{version}"
    if binary.exists():
        return binary
    source = BUILD / f"llama_cpp_python-{version}" / "vendor" / "llama.cpp"
    if not source.exists():
        BUILD.mkdir(parents=True, exist_ok=True)
        subprocess.run([sys.executable, "-m", "pip", "download", "--quiet", "--no-deps", "--no-binary", ":all:",
                        f"llama-cpp-python=={version}", "-d", str(BUILD)], check=True)
        with tarfile.open(BUILD / f"llama_cpp_python-{version}.tar.gz") as sdist:
            sdist.extractall(BUILD, filter="data")
    build = BUILD / "cmake"
    subprocess.run(["cmake", "-S", source, "-B", build, "-DCMAKE_BUILD_TYPE=Release", "-DLLAMA_BUILD_TOOLS=ON",
                    "-DLLAMA_BUILD_EXAMPLES=OFF", "-DLLAMA_BUILD_TESTS=OFF", "-DLLAMA_CURL=OFF",
                    "-DLLAMA_OPENSSL=OFF"], check=True, stdout=subprocess.DEVNULL)
    subprocess.run(["cmake", "--build", build, "--target", target, "-j", str(os.cpu_count())],
                   check=True, stdout=subprocess.DEVNULL)
    shutil.copy(build / "bin" / target, binary)
    return binary


def task_cores(threads: int) -> list[int]:
    """The cores mpibench gives a task of `threads` threads on this machine: the first, physical first."""
    from mpibench.affinity import physical_first
    from mpibench.metadata import core_siblings

    cpus = sorted(os.sched_getaffinity(0))
    return list(physical_first(cpus, core_siblings(cpus))[:threads])


def run_pinned(binary: Path, arguments: list[str], threads: int) -> str:
    """A llama.cpp tool's output, the tool pinned as mpibench's runner would be for a task of `threads` threads
    and running on llama-cpp-python's own llama.cpp libraries (the same compiled kernels as mpibench)."""
    from mpibench.affinity import runner_environment
    from mpibench.engine.build import library_dir

    cores = task_cores(threads)
    pin = ["taskset", "-c", ",".join(map(str, cores))]
    env = runner_environment(tuple(cores), os.environ)
    env["LD_LIBRARY_PATH"] = str(library_dir())
    return subprocess.run([*pin, str(binary), *arguments], check=True, capture_output=True, text=True, env=env).stdout


def run_llama_bench(binary: Path, model: str, args, threads: int) -> dict[str, list[float]]:
    """llama-bench's samples (tokens/s) per test, pinned (run_pinned)."""
    out = run_pinned(binary, ["-m", model, "-t", str(threads), "-p", str(args.p), "-n", str(args.n), "-r", str(args.r),
                              "-o", "json"], threads)
    return {(f"pp{t['n_prompt']}" if t["n_prompt"] else f"tg{t['n_gen']}"): t["samples_ts"] for t in json.loads(out)}


def run_mpibench(model: str, args, threads: int) -> dict[str, list[float]]:
    """`mpibench bench`'s measured repetitions (tokens/s) per test, under mpiexec -n 2."""
    from mpibench.store.hdf5 import read_results
    from mpibench.summary import bench_rate_metric

    with tempfile.TemporaryDirectory() as tmp:
        env = dict(os.environ, OMPI_ALLOW_RUN_AS_ROOT="1", OMPI_ALLOW_RUN_AS_ROOT_CONFIRM="1")
        subprocess.run([str(BIN / "mpiexec"), "-n", "2", str(BIN / "mpibench"), "bench", "-m", model, "-t", str(threads),
                        "-p", str(args.p), "-n", str(args.n), "-r", str(args.r), "--out", f"{tmp}/run", "--no-plots"],
                       check=True, capture_output=True, env=env)
        samples: dict[str, list[float]] = {}
        for row in read_results(f"{tmp}/run/results.h5").results:
            if row["status"] == "ok" and not row["warmup"]:
                samples.setdefault(row["prompt_id"], []).append(row[bench_rate_metric(row["prompt_id"])])
        return samples


def paired_rounds(args, base, other, names: tuple[str, str], target: float = 0.03) -> dict:
    """Run `base(threads)` and `other(threads)` (each: tokens/s samples per test) back to back for args.rounds
    rounds and each of args.threads, in alternating order; print each round's ratios (other / base medians), then
    per test and threads both sides' medians and the median of the rounds' ratios with its 95 % CI, and whether
    every ratio lies within `target` of 1. Returns the samples by (test, threads, 0 for base or 1 for other)."""
    from mpibench.stats import describe
    from mpibench.summary import prompt_order

    samples: dict[tuple[str, int, int], list[float]] = {}
    rounds: dict[tuple[str, int], list[float]] = {}
    for number in range(args.rounds):
        for threads in map(int, args.threads.split(",")):
            if number % 2 == 0:
                a, b = base(threads), other(threads)
            else:
                b = other(threads)
                a = base(threads)
            for test in a:
                samples.setdefault((test, threads, 0), []).extend(a[test])
                samples.setdefault((test, threads, 1), []).extend(b[test])
                rounds.setdefault((test, threads), []).append(statistics.median(b[test]) / statistics.median(a[test]))
            print(f"round {number + 1}/{args.rounds}, {threads} threads: "
                  + ", ".join(f"{test} {rounds[test, threads][-1]:.3f}" for test in a), file=sys.stderr, flush=True)
    print(f"{'test':>8} {'threads':>7} {names[0]:>12} {names[1]:>12} {'ratio':>7}  95 % CI")
    worst = 0.0
    for key in sorted(rounds, key=lambda k: (prompt_order(k[0]), k[1])):
        ratio = describe(rounds[key])
        worst = max(worst, abs(ratio.median - 1))
        print(f"{key[0]:>8} {key[1]:>7} {statistics.median(samples[(*key, 0)]):>12.2f} "
              f"{statistics.median(samples[(*key, 1)]):>12.2f} {ratio.median:>7.3f}  [{ratio.ci_low:.3f}, {ratio.ci_high:.3f}]")
    print(f"tokens/s: median of all samples; ratio: median over rounds of ({names[1]} median / {names[0]} median), "
          "with its 95 % confidence interval (order statistics)")
    print(f"largest deviation {100 * worst:.1f} % ({'within' if worst <= target else 'OUTSIDE'} the "
          f"{100 * target:g} % target)")
    return samples


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", help="GGUF file (default: the builtin SmolLM2-135M)")
    parser.add_argument("--threads", default="1,2")
    parser.add_argument("-p", type=int, default=512)
    parser.add_argument("-n", type=int, default=128)
    parser.add_argument("-r", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=40, help="back-to-back pairs of llama-bench and mpibench")
    args = parser.parse_args()
    sys.path.insert(0, str(ROOT))
    from mpibench.models import builtin_path

    model = args.model or str(builtin_path("smollm2-135m"))
    binary = llama_tool("llama-bench")
    print(f"model {Path(model).name}, llama-cpp-python {importlib.metadata.version('llama-cpp-python')}, "
          f"{args.rounds} rounds x {args.r} repetitions, order alternating; llama-bench pinned as mpibench's runner")
    paired_rounds(args, lambda t: run_llama_bench(binary, model, args, t), lambda t: run_mpibench(model, args, t),
                  ("llama-bench", "mpibench"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
