"""The files behind `synth:SHAPE:QUANT` models: generated once into the cache folder, with their sha256 beside.

The folder is $MPIBENCH_CACHE/synth/v1, or ~/.cache/mpibench/synth/v1; v1 is the generator's version, so a
generator that writes other bytes never reuses an older file. Rank 0 generates before any task starts; the
runners on other nodes open the same path, so the cache must be on a filesystem every node shares (set
MPIBENCH_CACHE to one when the home directory is not).
"""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path

from mpibench.synth.model import file_size, write
from mpibench.synth.shapes import SynthError, parse_synth_name

CACHE_ENV = "MPIBENCH_CACHE"
GENERATOR_VERSION = "v1"


def cache_dir() -> Path:
    base = os.environ.get(CACHE_ENV) or Path.home() / ".cache" / "mpibench"
    return Path(base) / "synth" / GENERATOR_VERSION


def cached_path(name: str) -> Path:
    """Where the file of a synthetic model name ("synth:llama2-7b:q4_0") is kept."""
    shape, quant = parse_synth_name(name)
    return cache_dir() / f"{shape}-{quant}.gguf"


def _digest_path(path: Path) -> Path:
    return path.with_name(path.name + ".sha256")


def recorded_sha256(name: str) -> str:
    """The sha256 recorded when the model's file was generated ("" if it was not)."""
    try:
        return _digest_path(cached_path(name)).read_text().strip()
    except OSError:
        return ""


def ensure(name: str) -> Path:
    """The model's file, generated first if the cache lacks it (or holds a partial one)."""
    shape, quant = parse_synth_name(name)
    path, size = cached_path(name), file_size(shape, quant)
    if path.is_file() and path.stat().st_size == size and recorded_sha256(name):
        return path
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        free = shutil.disk_usage(path.parent).free
    except OSError as error:
        raise SynthError(f"cannot use the cache folder {path.parent} for {name}: {error.strerror}; set "
                         f"{CACHE_ENV} to a writable folder that every node shares") from None
    if free < size:
        raise SynthError(f"{name} needs {size / 2**30:.1f} GiB in {path.parent}, which has {free / 2**30:.1f} GiB "
                         f"free; free some space or set {CACHE_ENV} to another folder that every node shares")
    print(f"mpibench: generating {name} ({size / 2**30:.2f} GiB) into {path}", file=sys.stderr, flush=True)
    digest = write(shape, quant, path)
    _digest_path(path).write_text(digest + "\n")
    return path
