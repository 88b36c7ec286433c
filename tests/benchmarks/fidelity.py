"""Fidelity: mpibench's bench mode against llama.cpp's own llama-bench, on the same model and thread counts.

Builds llama-bench from the llama.cpp sources vendored in the llama-cpp-python sdist of the installed
version (downloaded from PyPI once, built into build/fidelity/), then runs llama-bench and `mpibench bench`
alternately (ABAB...) and prints, per test and thread count, the median tokens/s of each and their ratio.
Target: every ratio within [0.97, 1.03] for SmolLM2 at 1 and 2 threads.

Usage: python tests/benchmarks/fidelity.py [--threads 1,2] [-p 512] [-n 128] [-r 5] [--rounds 2] [--model PATH]
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


def llama_bench() -> Path:
    """The llama-bench binary built from the installed llama-cpp-python's vendored llama.cpp."""
    version = importlib.metadata.version("llama-cpp-python")
    binary = BUILD / f"llama-bench-{version}"
    if binary.exists():
        return binary
    BUILD.mkdir(parents=True, exist_ok=True)
    subprocess.run([sys.executable, "-m", "pip", "download", "--quiet", "--no-deps", "--no-binary", ":all:",
                    f"llama-cpp-python=={version}", "-d", str(BUILD)], check=True)
    with tarfile.open(BUILD / f"llama_cpp_python-{version}.tar.gz") as sdist:
        sdist.extractall(BUILD, filter="data")
    source = BUILD / f"llama_cpp_python-{version}" / "vendor" / "llama.cpp"
    build = BUILD / "cmake"
    subprocess.run(["cmake", "-S", source, "-B", build, "-DCMAKE_BUILD_TYPE=Release", "-DLLAMA_BUILD_TOOLS=ON",
                    "-DLLAMA_BUILD_EXAMPLES=OFF", "-DLLAMA_BUILD_TESTS=OFF", "-DLLAMA_CURL=OFF",
                    "-DLLAMA_OPENSSL=OFF"], check=True, stdout=subprocess.DEVNULL)
    subprocess.run(["cmake", "--build", build, "--target", "llama-bench", "-j", str(os.cpu_count())],
                   check=True, stdout=subprocess.DEVNULL)
    shutil.copy(build / "bin" / "llama-bench", binary)
    return binary


def run_llama_bench(binary: Path, model: str, args) -> dict[tuple[str, int], list[float]]:
    out = subprocess.run([str(binary), "-m", model, "-t", args.threads, "-p", str(args.p), "-n", str(args.n),
                          "-r", str(args.r), "-o", "json"], check=True, capture_output=True, text=True).stdout
    samples = {}
    for test in json.loads(out):
        name = f"pp{test['n_prompt']}" if test["n_prompt"] else f"tg{test['n_gen']}"
        samples[(name, test["n_threads"])] = test["samples_ts"]
    return samples


def run_mpibench(model: str, args) -> dict[tuple[str, int], list[float]]:
    from mpibench.store.hdf5 import read_results

    with tempfile.TemporaryDirectory() as tmp:
        env = dict(os.environ, OMPI_ALLOW_RUN_AS_ROOT="1", OMPI_ALLOW_RUN_AS_ROOT_CONFIRM="1")
        subprocess.run([str(BIN / "mpiexec"), "-n", "2", str(BIN / "mpibench"), "bench", "-m", model, "-t", args.threads,
                        "-p", str(args.p), "-n", str(args.n), "-r", str(args.r), "-o", f"{tmp}/run", "--no-plots"],
                       check=True, capture_output=True, env=env)
        samples: dict[tuple[str, int], list[float]] = {}
        for row in read_results(f"{tmp}/run/results.h5").results:
            if row["status"] == "ok" and not row["warmup"]:
                speed = row["prefill_tok_s"] if row["prompt_id"].startswith("pp") else row["decode_tok_s"]
                samples.setdefault((row["prompt_id"], row["threads"]), []).append(speed)
        return samples


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", help="GGUF file (default: the builtin SmolLM2-135M)")
    parser.add_argument("--threads", default="1,2")
    parser.add_argument("-p", type=int, default=512)
    parser.add_argument("-n", type=int, default=128)
    parser.add_argument("-r", type=int, default=5)
    parser.add_argument("--rounds", type=int, default=2, help="alternations of llama-bench and mpibench")
    args = parser.parse_args()
    sys.path.insert(0, str(ROOT))
    from mpibench.models import builtin_path

    model = args.model or str(builtin_path("smollm2-135m"))
    binary = llama_bench()
    theirs: dict = {}
    ours: dict = {}
    for _ in range(args.rounds):
        for key, values in run_llama_bench(binary, model, args).items():
            theirs.setdefault(key, []).extend(values)
        for key, values in run_mpibench(model, args).items():
            ours.setdefault(key, []).extend(values)
    print(f"model {Path(model).name}, llama-cpp-python {importlib.metadata.version('llama-cpp-python')}, "
          f"{args.rounds} rounds x {args.r} repetitions, medians of tokens/s")
    print(f"{'test':>8} {'threads':>7} {'llama-bench':>12} {'mpibench':>10} {'ratio':>7}")
    worst = 0.0
    for key in sorted(theirs, key=lambda k: (k[0][:2], int(k[0][2:]), k[1])):
        a, b = statistics.median(theirs[key]), statistics.median(ours[key])
        worst = max(worst, abs(b / a - 1))
        print(f"{key[0]:>8} {key[1]:>7} {a:>12.2f} {b:>10.2f} {b / a:>7.3f}")
    print(f"largest deviation {100 * worst:.1f} % ({'within' if worst <= 0.03 else 'OUTSIDE'} the 3 % target)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
