"""Batched fidelity: the load runner's continuous batching against llama.cpp's own llama-batched-bench.

Builds llama-batched-bench from the llama.cpp sources vendored in the installed llama-cpp-python's sdist (as
fidelity.py builds llama-bench, into build/fidelity/). Then, in paired rounds of alternating order, for S = 1, 2,
4, 8 sequences on one thread:
- llama-batched-bench -npp P -ntg N -npl S (r times), pinned as a runner is: its S_TG, the aggregate decode tok/s
  of S sequences decoding in lockstep after their prefill;
- the load runner (mpibench.load.server) with S slots, driven as S closed-loop users without think time: each
  cycle the S users send a fixed-workload request (P random prompt tokens, exactly N generated, end-of-sequence
  ignored) together, so all S prefill in one step and decode in lockstep, as in llama-batched-bench; a cycle's
  aggregate decode tok/s is its S x (N - 1) decode tokens over the time from its first first token to its last
  token (the first token of each comes from the prefill), r cycles after one warm-up cycle.
Then the same runner at S = 1 against `mpibench bench -p 0 -n N` (its tgN test), in paired rounds too.
Prints per S both sides' aggregate decode tok/s, the median of the rounds' ratios with its 95 % interval, and
the gain of batching over one sequence (median at S / median at S = 1, with stats.ratio_ci's bootstrap interval).
Targets: within 5 % of S_TG at every S; within 3 % of mpibench bench at S = 1.

Usage: python tests/benchmarks/batched_fidelity.py [-p 128] [-n 128] [-r 2] [--slots 1,2,4,8] [--rounds 10]
[--model PATH]
"""

from __future__ import annotations

import argparse
import importlib.metadata
import json
import os
import select
import statistics
import sys
from pathlib import Path

from fidelity import ROOT, llama_tool, paired_rounds, run_mpibench, run_pinned, task_cores

READY_S = 120.0
WARMUP = (16, 4)  # warm-up cycle: prompt and generated tokens


def run_batched_bench(binary: Path, model: str, args, slots: list[int]) -> dict[str, list[float]]:
    """llama-batched-bench's S_TG samples per S (one process per S, so that n_seq_max = S as in the runner)."""
    samples = {}
    for s in slots:
        out = run_pinned(binary, ["-m", model, "-t", "1", "-c", str(s * (args.p + args.n)), "-npp", str(args.p),
                                  "-ntg", str(args.n), "-npl", ",".join([str(s)] * args.r), "-no-kvu",
                                  "--output-format", "jsonl"], 1)
        samples[f"S{s}"] = [json.loads(line)["speed_tg"] for line in out.splitlines() if line.startswith("{")]
    return samples


def cycle(runner, slots: int, n_prompt: int, n_gen: int) -> float:
    """One cycle of `slots` closed-loop users sent together: their aggregate decode tok/s."""
    from mpibench.protocol import Submit

    runner.submit(*[Submit(i, prompt_tokens=n_prompt, max_tokens=n_gen, ignore_eos=True) for i in range(slots)])
    done = []
    while len(done) < slots:
        select.select([runner], [], [], 1.0)
        done += runner.events()
    if any(f.error or len(f.token_ns) != n_gen for f in done):
        raise SystemExit(f"the load runner failed a request: {[f.error for f in done if f.error]}")
    span = max(f.token_ns[-1] for f in done) - min(f.token_ns[0] for f in done)
    return slots * (n_gen - 1) / span * 1e9


def run_runner(model: str, args, slots: list[int]) -> dict[str, list[float]]:
    """The load runner's aggregate decode tok/s per S: one runner of S slots on the core a 1-thread task gets."""
    from mpibench.load.runners import RunnerProcess
    from mpibench.protocol import ServeRequest

    samples, cores, everything = {}, tuple(task_cores(1)), os.sched_getaffinity(0)
    if everything - set(cores):  # this process, the users' driver, waits on the runner's pipe off its core
        os.sched_setaffinity(0, everything - set(cores))
    try:
        for s in slots:
            runner = RunnerProcess.start(ServeRequest(model, cores, 1, s, args.p + args.n, 0, "chat"))
            try:
                runner.wait_ready(READY_S)
                cycle(runner, s, *WARMUP)
                samples[f"S{s}"] = [cycle(runner, s, args.p, args.n) for _ in range(args.r)]
            finally:
                runner.close()
    finally:
        os.sched_setaffinity(0, everything)
    return samples


def print_gains(samples: dict, names: tuple[str, str]) -> None:
    """Each side's aggregate decode tok/s at S over S = 1, with its bootstrap interval."""
    from mpibench.stats import ratio_ci

    keys = sorted({key[0] for key in samples}, key=lambda test: int(test[1:]))
    print("gain of batching over one sequence (aggregate decode tok/s at S / at S = 1, 95 % bootstrap interval):")
    for side, name in enumerate(names):
        one = samples[(keys[0], 1, side)]
        gains = []
        for key in keys:
            s = samples[(key, 1, side)]
            low, high = ratio_ci(s, one)
            gains.append(f"{key} {statistics.median(s) / statistics.median(one):.2f}x [{low:.2f}, {high:.2f}]")
        print(f"  {name:>20}: " + ", ".join(gains))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", help="GGUF file (default: the builtin SmolLM2-135M)")
    parser.add_argument("--slots", default="1,2,4,8", help="the S values")
    parser.add_argument("-p", type=int, default=128, help="prompt tokens per request")
    parser.add_argument("-n", type=int, default=128, help="generated tokens per request")
    parser.add_argument("-r", type=int, default=2, help="repetitions (cycles) per S and side in a round")
    parser.add_argument("--rounds", type=int, default=10, help="paired rounds of each comparison")
    args = parser.parse_args()
    sys.path.insert(0, str(ROOT))
    from mpibench.models import builtin_path

    model = args.model or str(builtin_path("smollm2-135m"))
    slots = [int(s) for s in args.slots.split(",")]
    runner_core = task_cores(1)
    binary = llama_tool("llama-batched-bench")
    print(f"model {Path(model).name}, llama-cpp-python {importlib.metadata.version('llama-cpp-python')}, "
          f"-npp {args.p} -ntg {args.n}, 1 thread on CPU {runner_core[0]}, {args.rounds} rounds x {args.r} "
          f"repetitions, order alternating; aggregate decode tok/s")
    args.threads = "1"
    names = ("batched-bench S_TG", "load runner")
    samples = paired_rounds(args, lambda t: run_batched_bench(binary, model, args, slots),
                            lambda t: run_runner(model, args, slots), names, target=0.05)
    print_gains(samples, names)
    print(f"\nS = 1: the load runner against mpibench bench -p 0 -n {args.n} (tg{args.n})")
    bench_args = argparse.Namespace(p=0, n=args.n, r=args.r, rounds=args.rounds, threads="1")
    paired_rounds(bench_args, lambda t: run_mpibench(model, bench_args, t),
                  lambda t: {f"tg{args.n}": run_runner(model, args, [1])["S1"]}, ("mpibench bench", "load runner"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
