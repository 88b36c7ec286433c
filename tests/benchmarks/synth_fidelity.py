"""Synthetic fidelity: a synthetic file of SmolLM2-135M's exact shape and tensor types (Q4_1 layers, Q8_0 tied
embedding: `mpibench synth --shape smollm2-135m --quant q4_1`) against the real SmolLM2 file, in `mpibench bench`.

The synthetic file's tensors are checked first to be those of the real file (names, dimensions, types, bytes;
read with the gguf package). Then, for many short rounds and each thread count, `mpibench bench` runs the real
file and the synthetic one back to back in alternating order (ABBA), as tests/benchmarks/fidelity.py pairs
llama-bench and mpibench: per round, the synthetic median over the real one; the figure is the median of the
rounds' ratios with its 95 % confidence interval. Target: every ratio within [0.97, 1.03], in pp and tg.

Usage: python tests/benchmarks/synth_fidelity.py [--threads 1,2] [-p 512] [-n 128] [-r 2] [--rounds 30]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
from pathlib import Path

from fidelity import ROOT, run_mpibench


def tensor_table(path: str) -> dict[str, tuple]:
    """Each tensor's (type, dimensions, bytes), read with the gguf package."""
    import gguf

    return {t.name: (t.tensor_type.name, tuple(int(d) for d in t.shape), int(t.n_bytes))
            for t in gguf.GGUFReader(path).tensors}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", default="1,2")
    parser.add_argument("-p", type=int, default=512)
    parser.add_argument("-n", type=int, default=128)
    parser.add_argument("-r", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=30, help="back-to-back pairs of the real and synthetic file")
    args = parser.parse_args()
    sys.path.insert(0, str(ROOT))
    from mpibench.models import builtin_path
    from mpibench.stats import describe
    from mpibench.summary import prompt_order
    from mpibench.synth.model import write

    real = str(builtin_path("smollm2-135m"))
    with tempfile.TemporaryDirectory() as tmp:
        synthetic = f"{tmp}/smollm2-135m-q4_1.gguf"
        write("smollm2-135m", "q4_1", synthetic)
        theirs, ours = tensor_table(real), tensor_table(synthetic)
        if theirs != ours:
            differ = sorted(k for k in theirs.keys() | ours.keys() if theirs.get(k) != ours.get(k))
            print(f"the synthetic file's tensors differ from the real file's: {', '.join(differ[:5])}")
            return 1
        print(f"tensors: {len(ours)}, the same names, dimensions, types and bytes as {Path(real).name} "
              f"({sum(v[2] for v in ours.values()) / 2**20:.1f} MiB)")
        rounds: dict[tuple[str, int], list[float]] = {}
        rates: dict[tuple[str, int, str], list[float]] = {}
        for number in range(args.rounds):
            for threads in map(int, args.threads.split(",")):
                order = (real, synthetic) if number % 2 == 0 else (synthetic, real)
                measured = {path: run_mpibench(path, args, threads) for path in order}
                for test in measured[real]:
                    key = (test, threads)
                    rounds.setdefault(key, []).append(statistics.median(measured[synthetic][test])
                                                      / statistics.median(measured[real][test]))
                    for label, path in (("real", real), ("synthetic", synthetic)):
                        rates.setdefault((test, threads, label), []).extend(measured[path][test])
                print(f"round {number + 1}/{args.rounds}, {threads} threads: "
                      + ", ".join(f"{test} {rounds[test, threads][-1]:.3f}" for test in measured[real]),
                      file=sys.stderr, flush=True)
    print(f"SmolLM2-135M Q4_1, real against synthetic, {args.rounds} rounds x {args.r} repetitions, order alternating")
    print(f"{'test':>8} {'threads':>7} {'real':>9} {'synthetic':>10} {'ratio':>7}  95 % CI")
    worst = 0.0
    for key in sorted(rounds, key=lambda k: (prompt_order(k[0]), k[1])):
        ratio = describe(rounds[key])
        worst = max(worst, abs(ratio.median - 1))
        print(f"{key[0]:>8} {key[1]:>7} {statistics.median(rates[(*key, 'real')]):>9.2f} "
              f"{statistics.median(rates[(*key, 'synthetic')]):>10.2f} {ratio.median:>7.3f}  "
              f"[{ratio.ci_low:.3f}, {ratio.ci_high:.3f}]")
    print("tokens/s: median of all samples; ratio: median over rounds of (synthetic median / real median), "
          "with its 95 % confidence interval (order statistics)")
    print(f"largest deviation {100 * worst:.1f} % ({'within' if worst <= 0.03 else 'OUTSIDE'} the 3 % target)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
