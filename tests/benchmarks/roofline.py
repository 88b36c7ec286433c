"""Roofline: how close decode comes to the memory bound, for a 1B-class and a 7B-class model on this machine.

Writes llama-shaped Q4_0 files with random weights of a trained model's magnitude (mpibench synth: TinyLlama-1.1B's
shape and LLaMA-2-7B's; zero weights would decode faster, see mpibench/synth/model.py) into --models (kept for the next run), runs
`mpiexec -n 2 mpibench bench -m 1b,7b -p 64 -n 16 -t 1,2` (the bench probes each node's read bandwidth before its
first task) and prints per model and thread count: the probe's bandwidth, the bytes read per decoded token, the
bound they give, the median decode tok/s of tg16 and its fraction of the bound, and pp64 beside them; and the
machine's load average before and after, since other work on a shared machine takes both bandwidth and cores.

Usage: python tests/benchmarks/roofline.py [--models DIR] [--threads 1,2] [--repetitions 5] [--out DIR]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
SHAPES = {"tinyllama-1.1b": "1B-class (TinyLlama-1.1B's shape)", "llama2-7b": "7B-class (LLaMA-2-7B's shape)"}


def model_files(folder: Path) -> list[Path]:
    """The two synthetic files, written once into `folder`."""
    sys.path.insert(0, str(ROOT))
    from mpibench.synth.model import write

    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for shape in SHAPES:
        path = folder / f"{shape}-q4_0.gguf"
        if not path.exists():
            print(f"writing {path}", file=sys.stderr)
            write(shape, "q4_0", path)
        paths.append(path)
    return paths


def table(results_path: Path) -> list[str]:
    """Per model and thread count: bandwidth, bytes a token, bound, tg16 decode and its fraction, pp64."""
    sys.path.insert(0, str(ROOT))
    from mpibench.store.hdf5 import read_results
    from mpibench.summary import cells
    from mpibench.table import table_lines

    results = read_results(results_path)
    bandwidth = {(r["hostname"], r["threads"]): r["gb_per_s"] for r in results.bandwidth}
    hosts = {r["threads"]: r["hostname"] for r in results.results}
    by_key = {(c.model, c.prompt_id, c.threads): c for c in cells(results.results)}
    rows = [("model", "threads", "GB/s", "MB/token", "bound tok/s", "tg16 tok/s", "fraction", "pp64 tok/s")]
    for (model, test, threads), cell in sorted(by_key.items()):
        if test != "tg16":
            continue
        m, pp = cell.medians, by_key.get((model, "pp64", threads))
        rows.append((model, str(threads), f"{bandwidth.get((hosts[threads], threads), float('nan')):.1f}",
                     f"{m['bytes_per_token'] / 1e6:.1f}", f"{m['roofline_tok_s']:.2f}", f"{m['decode_tok_s']:.2f}",
                     f"{100 * m['roofline_fraction']:.0f} %", f"{pp.medians['prefill_tok_s']:.2f}" if pp else "-"))
    return table_lines(rows, left=1)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default=str(Path(tempfile.gettempdir()) / "mpibench-synthetic"),
                        help="folder for the synthetic files (kept)")
    parser.add_argument("--threads", default="1,2")
    parser.add_argument("--repetitions", default="5")
    parser.add_argument("--out", help="run directory (default: a temporary one)")
    args = parser.parse_args(argv)
    files = model_files(Path(args.models))
    out = args.out or tempfile.mkdtemp(prefix="mpibench-roofline-")
    env = dict(os.environ, OMPI_ALLOW_RUN_AS_ROOT="1", OMPI_ALLOW_RUN_AS_ROOT_CONFIRM="1")
    command = [str(BIN / "mpiexec"), "-n", "2", str(BIN / "mpibench"), "bench", "-m", ",".join(map(str, files)),
               "-p", "64", "-n", "16", "-t", args.threads, "-r", args.repetitions, "--out", out, "--force"]
    print(" ".join(command), file=sys.stderr)
    before = os.getloadavg()
    subprocess.run(command, check=True, env=env, cwd=ROOT)
    print("\n".join(table(Path(out) / "results.h5")))
    print(f"load average (1, 5, 15 min) before: {' '.join(f'{x:.2f}' for x in before)}, after: "
          f"{' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    print(f"report: {Path(out) / 'report.md'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
