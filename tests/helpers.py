"""What many tests share: launching mpibench under a real mpiexec, and the header of a small results file.

Test modules import this (`from helpers import ...`), never each other."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

HOST = {"hostname": "h", "cpu_model": "cpu", "logical_cpus": 2, "physical_cores": 2, "memory_bytes": 1,
        "kernel": "k", "governor": "g", "smt": "off", "cpus": "0-1"}
MODEL = {"name": "m", "path": "/m", "size_bytes": 1, "mtime": 0.0, "architecture": "llama", "quantization": "Q4_1",
         "parameters": 5, "context_length": 8, "has_chat_template": 1, "prompt_format": "chat"}


def mpiexec() -> str:
    """The mpiexec next to this Python (the test venv's MPICH), else the first on PATH."""
    found = shutil.which("mpiexec", path=str(Path(sys.executable).parent)) or shutil.which("mpiexec")
    if not found:
        pytest.fail("mpiexec not found: install an MPI (pip install mpich) next to this Python")
    return found


def mpi_env(**extra: str) -> dict[str, str]:
    """This process's environment, with Open MPI allowed to run as root (as in a container), and `extra`."""
    return dict(os.environ, OMPI_ALLOW_RUN_AS_ROOT="1", OMPI_ALLOW_RUN_AS_ROOT_CONFIRM="1", **extra)


def mpibench_command(ranks: int | None, *args: str) -> list[str]:
    """`python -m mpibench ARGS`, under `mpiexec -n RANKS` unless ranks is None."""
    launch = [mpiexec(), "-n", str(ranks)] if ranks else []
    return [*launch, sys.executable, "-m", "mpibench", *args]


def mpibench(ranks: int | None, *args: str, timeout: float = 600, env: dict | None = None) -> subprocess.CompletedProcess:
    """Run `mpibench ARGS` (under mpiexec -n RANKS unless ranks is None) to its end, output captured."""
    return subprocess.run(mpibench_command(ranks, *args), capture_output=True, text=True, timeout=timeout,
                          env=mpi_env() if env is None else env)


def header(total: int = 2, **fields) -> dict:
    """A results file's header (one host, one worker, model "m", prompt "pi"); `fields` replace its entries."""
    return {
        "run_id": "r1", "mpibench_version": "0", "config_hash": "h", "config_json": "{}", "config_toml": "",
        "mpi_library_version": "MPI", "world_size": 3, "total_tasks": total, "started": "t", "status": "complete",
        "hosts": [dict(HOST)],
        "workers": [{"rank": 0, "hostname": "h", "pid": 1, "cpus": "0"}],
        "models": [dict(MODEL)],
        "prompts": [{"id": "pi", "category": "factual", "text": "What is the value of pi?"}],
        **fields,
    }


def assert_pngs(paths) -> None:
    """Each file is a PNG about the report's width (~900 px) that is not blank."""
    import matplotlib.image

    for path in paths:
        assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        image = matplotlib.image.imread(path)
        assert image.shape[0] > 100 and 700 <= image.shape[1] <= 1100 and image.std() > 0
