"""The installed llama.cpp build's files, found without importing llama_cpp (which would start llama.cpp in
the importing process): its library folder and the CPU variants of a portable build."""

from __future__ import annotations

import importlib.util
from pathlib import Path


def library_dir() -> Path:
    """llama-cpp-python's folder of llama.cpp libraries (site-packages/llama_cpp/lib)."""
    spec = importlib.util.find_spec("llama_cpp")
    if spec is None or spec.origin is None:
        raise ImportError("llama-cpp-python is not installed: run bash launch/setup.sh")
    return Path(spec.origin).parent / "lib"


def cpu_variants(lib_dir: Path) -> list[Path]:
    """The CPU backend plugins of a portable build (launch/build-portable.sh: GGML_BACKEND_DL, one per CPU
    generation); [] for a plain build, whose CPU backend is built in.

    pip installs the plugins into site-packages/bin, not beside libggml, where ggml would not look.
    """
    return sorted(p for d in (lib_dir, lib_dir.parent.parent / "bin") for p in d.glob("libggml-cpu-*.so"))


def cpu_backends(lib_dir: Path) -> list[Path]:
    """Every CPU backend library of the build: the built-in libggml-cpu.so, if any, and the plugins."""
    built_in = lib_dir / "libggml-cpu.so"
    return ([built_in] if built_in.exists() else []) + cpu_variants(lib_dir)


def variant_name(library: Path) -> str:
    """"haswell" for libggml-cpu-haswell.so."""
    return library.name.removeprefix("libggml-cpu-").removesuffix(".so")
