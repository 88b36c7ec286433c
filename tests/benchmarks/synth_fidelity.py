"""Synthetic fidelity: a synthetic file of SmolLM2-135M's exact shape and tensor types (Q4_1 layers, Q8_0 tied
embedding: `mpibench synth --shape smollm2-135m --quant q4_1`) against the real SmolLM2 file, in `mpibench bench`.

The synthetic file's tensors are checked first to be those of the real file (names, dimensions, types, bytes;
read with the gguf package). The real file is copied beside the synthetic one, written the same way (8 MiB
chunks): on this kernel (6.18, ext4) how a file entered the page cache changes decode speed by about 10 % (its
folios), and the pip-installed copy would be compared with a freshly written one. Then, for many short rounds and each thread count, `mpibench bench` runs the real
file and the synthetic one back to back in alternating order (ABBA), as tests/benchmarks/fidelity.py pairs
llama-bench and mpibench: per round, the synthetic median over the real one; the figure is the median of the
rounds' ratios with its 95 % confidence interval. Target: every ratio within [0.97, 1.03], in pp and tg.

Usage: python tests/benchmarks/synth_fidelity.py [--threads 1,2] [-p 512] [-n 128] [-r 2] [--rounds 30]
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
from pathlib import Path

from fidelity import ROOT, paired_rounds, run_mpibench


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
    from mpibench.synth.model import CHUNK, write

    with tempfile.TemporaryDirectory() as tmp:
        real, synthetic = f"{tmp}/{builtin_path('smollm2-135m').name}", f"{tmp}/smollm2-135m-q4_1.gguf"
        with builtin_path("smollm2-135m").open("rb") as source, open(real, "wb") as copy:
            shutil.copyfileobj(source, copy, CHUNK)
        write("smollm2-135m", "q4_1", synthetic)
        theirs, ours = tensor_table(real), tensor_table(synthetic)
        if theirs != ours:
            differ = sorted(k for k in theirs.keys() | ours.keys() if theirs.get(k) != ours.get(k))
            print(f"the synthetic file's tensors differ from the real file's: {', '.join(differ[:5])}")
            return 1
        print(f"tensors: {len(ours)}, the same names, dimensions, types and bytes as {Path(real).name} "
              f"({sum(v[2] for v in ours.values()) / 2**20:.1f} MiB)")
        print(f"SmolLM2-135M Q4_1, real against synthetic, {args.rounds} rounds x {args.r} repetitions, "
              "order alternating")
        paired_rounds(args, lambda t: run_mpibench(real, args, t), lambda t: run_mpibench(synthetic, args, t),
                      ("real", "synthetic"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
