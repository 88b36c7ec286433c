#!/usr/bin/env bash
# Build llama-cpp-python for compute nodes whose CPU differs from the machine you build on.
#
# pip builds llama-cpp-python from source with GGML_NATIVE=ON: the library uses every SIMD instruction of
# the build machine (say AVX-512 on a new login node) and dies with "illegal instruction" (the task fails
# with "runner killed by signal 4") on an older compute node; built on an old login node it runs on a
# new compute node but leaves its AVX-512 unused, and every number comes out too slow.
#
# Signal 4 (or 11) on a node with AMX (Sapphire Rapids and later) can instead be a compiler bug: GCC 11 to
# 13.2 drop the stores that fill the AMX tile config, so the AMX matmul runs on unconfigured tiles (the
# sapphirerapids variant dies with SIGILL, a native build with SIGSEGV). This script, like setup.sh,
# builds with a fixed copy of the compiler's amxtileintrin.h when the compiler has the bug
# (mpibench/toolchain.py); `mpibench doctor` tells which of the two a node has. Pick one:
#
#   bash launch/build-portable.sh variants   # default: one CPU backend per x86 generation (SSE4.2, AVX,
#                                            #   AVX2, AVX-512, AMX, ... or the ARM levels), loaded at run
#                                            #   time: each node uses the best one it can run (the log
#                                            #   says "load_backend: loaded CPU backend from ...-haswell.so")
#   bash launch/build-portable.sh avx2       # one generic build: AVX2+FMA+F16C, no AVX-512 (any x86 CPU
#                                            #   since 2013-2017); the same code on every node
#   bash launch/build-portable.sh native     # tuned to the CPU it runs on: run it ON a compute node, e.g.
#                                            #   srun -N1 -c8 bash launch/build-portable.sh native
#
# The wheel lands in build/wheels/<kind>/ (<kind>-amxfix/ with the fix) and is installed into
# $MPIBENCH_VENV (default .venv) unless --no-install is given; --dry-run prints the commands instead.
# Compilation takes 5 minutes (avx2, native) to 30 minutes (variants) on 2 cores; set
# CMAKE_BUILD_PARALLEL_LEVEL to use more.
#
# Check what each node ran with after a sweep: `mpibench show results.h5` prints, per host, the SIMD
# features of the llama.cpp build it used and those of its CPU that the build left unused; the same is
# in the hosts table of results.h5 (columns llama_system_info, simd, simd_unused).
set -euo pipefail
cd "$(dirname "$0")/.."
dry_run=0 install=1 kind=variants
for arg in "$@"; do
  case "$arg" in
    --dry-run) dry_run=1 ;;
    --no-install) install=0 ;;
    variants|avx2|native) kind="$arg" ;;
    *) echo "build-portable.sh: unknown argument '$arg' (expected variants, avx2, native, --dry-run, --no-install)" >&2; exit 2 ;;
  esac
done
venv="${MPIBENCH_VENV:-.venv}"
python="$venv/bin/python"
[ -x "$python" ] || python=python3

case "$kind" in
  # GGML_BACKEND_DL: the CPU backend is a plugin; GGML_CPU_ALL_VARIANTS: build it once per CPU level.
  variants) cmake_args="-DGGML_NATIVE=OFF -DGGML_BACKEND_DL=ON -DGGML_CPU_ALL_VARIANTS=ON" ;;
  avx2) cmake_args="-DGGML_NATIVE=OFF -DGGML_AVX=ON -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON -DGGML_BMI2=ON -DGGML_AVX512=OFF" ;;
  native) cmake_args="-DGGML_NATIVE=ON" ;;
esac
# The version already installed (so nothing else changes), else the newest.
version="$("$python" -c 'import importlib.metadata as m; print(m.version("llama-cpp-python"))' 2>/dev/null || true)"
spec="llama-cpp-python${version:+==$version}"
out="build/wheels/$kind"
build_env=(CMAKE_ARGS="$cmake_args")
# Every kind gets the fixed header when the compiler needs it (avx2 compiles no AMX code, but its libraries
# then carry the fix marker like the others, and setup.sh keeps them). The check compiles a probe and
# writes build/amx-fix/amxtileintrin.h, in a dry run too.
fix_flags="$("$python" -m mpibench.toolchain amx-fix build/amx-fix)"
if [ -n "$fix_flags" ]; then
  echo "llama.cpp: ${CXX:-c++} drops AMX tile-config stores; building with the fixed header (keeps AMX)" >&2
  build_env+=(CXXFLAGS="${CXXFLAGS:+$CXXFLAGS }$fix_flags")
  out="$out-amxfix"
fi

run() {
  if [ "$dry_run" = 0 ]; then "$@"; return; fi
  for word in "$@"; do
    if [[ "$word" =~ ^[][A-Za-z0-9_./:=,@%+*-]+$ ]]; then printf '%s ' "$word"; else printf '%q ' "$word"; fi
  done
  echo
}

# --no-cache-dir: pip's wheel cache ignores CMAKE_ARGS and CXXFLAGS and would hand back the native build.
run env "${build_env[@]}" "$python" -m pip wheel --no-deps --no-binary llama-cpp-python \
  --no-cache-dir --wheel-dir "$out" "$spec"
if [ "$install" = 1 ]; then
  wheel="$out/llama_cpp_python-${version:-*}-*.whl"
  [ "$dry_run" = 1 ] || wheel="$(ls -t $wheel | head -n 1)"
  run "$python" -m pip install --no-deps --force-reinstall --no-cache-dir "$wheel"
  # mpibench loads the best CPU plugin of a "variants" build itself (mpibench/engine/llama.py).
  run "$python" -c "from mpibench.engine.llama import LlamaEngine; print(LlamaEngine.system_info())"
fi
