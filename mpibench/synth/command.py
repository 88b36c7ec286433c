"""`mpibench synth`: write a synthetic model file, or list the shapes with their sizes and memory needs."""

from __future__ import annotations

import sys
import time
from pathlib import Path

from mpibench.memory import kv_cache_bytes
from mpibench.synth.model import file_size, write
from mpibench.synth.shapes import QUANTS, SHAPES, SynthError, lookup, tensors
from mpibench.table import table_lines

GIB = 2**30


def parameters(shape_name: str) -> int:
    """The shape's parameter count (elements of all its tensors)."""
    shape, quant = lookup(shape_name, "q4_0")
    total = 0
    for spec in tensors(shape, quant):
        count = 1
        for d in spec.dims:
            count *= d
        total += count
    return total


def list_lines(quant: str, n_ctx: int) -> list[str]:
    """The shapes as a table: hyperparameters, file size in `quant`, KV cache at `n_ctx` and their sum."""
    lookup(next(iter(SHAPES)), quant)
    rows = [("shape", "params", "layers", "width", "heads/kv", "ffn", "vocab", f"{quant} file",
             f"KV n_ctx {n_ctx}", "memory", "source")]
    for name, shape in SHAPES.items():
        size = file_size(name, quant)
        kv = kv_cache_bytes(shape.layers, shape.kv_heads, shape.head_dim, shape.head_dim, n_ctx)
        rows.append((name, f"{parameters(name) / 1e9:.2f}B", str(shape.layers), str(shape.embd),
                     f"{shape.heads}/{shape.kv_heads}", str(shape.ff), str(shape.vocab), f"{size / GIB:.2f} GiB",
                     f"{kv / GIB:.2f} GiB", f"{(size + kv) / GIB:.2f} GiB", shape.source))
    return table_lines(rows, left=1, ragged_last=True) + [
        f"memory: the file (mapped) plus the F16 KV cache at n_ctx {n_ctx} (mpibench's default context); "
        f"quantizations: {', '.join(QUANTS)} (--quant)"]


def synth_command(args, n_ctx: int) -> int:
    if args.list:
        print("\n".join(list_lines(args.quant, n_ctx)))
        return 0
    if not args.shape or not args.out:
        raise SynthError("give --shape NAME and --out FILE (or --list to see the shapes)")
    lookup(args.shape, args.quant)
    out = Path(args.out)
    if out.is_dir():
        raise SynthError(f"{out} is a directory; give a file name")
    if out.exists() and not args.force:
        raise SynthError(f"{out} exists; choose another --out or pass --force to replace it")
    started = time.perf_counter()
    digest = write(args.shape, args.quant, out)
    seconds = time.perf_counter() - started
    size = out.stat().st_size
    print(f"{out}: synthetic {args.shape} {args.quant}, {size / GIB:.2f} GiB in {seconds:.1f} s "
          f"({size / 2**20 / max(seconds, 1e-9):.0f} MiB/s), sha256 {digest}", file=sys.stderr)
    return 0
