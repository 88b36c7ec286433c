#!/usr/bin/env bash
# Thread scaling at 1/2/4/8/16 cores on a many-core machine with no network (the lent device machine).
# Carried in: build/device/llama-cpp-python (the llama-cpp-python sdist without models, docs, tests and GPU
# backends) and build/device/pylib (pure-Python jinja2, diskcache...). Builds llama-cpp-python with every core,
# writes synthetic llama-shaped Q4_0 files (mpibench synth; SHAPES from mpibench synth --list), runs one
# mpibench sweep and leaves results.h5, the plots and the `mpibench show` table in $OUT.
set -euo pipefail
OUT="${OUT:-/tmp/scaling-out}"
THREADS="${THREADS:-1,2,4,8,16}"
mkdir -p "$OUT"
site="${SITE:-$HOME/mpibench-site}"
export PYTHONPATH="$PWD:$site:$PWD/build/device/pylib"
python3 -c 'import tomllib' 2>/dev/null || PYTHONPATH="$PYTHONPATH:$PWD/build/device/pycompat"
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
{ python3 --version; nproc; grep -m1 "model name" /proc/cpuinfo; cat /sys/devices/system/cpu/smt/control 2>/dev/null || true; } | tee "$OUT/machine.txt"
if ! python3 -c 'import llama_cpp' 2>/dev/null; then
  start=$(date +%s)
  # The system compiler: a toolchain that links libstdc++ statically into each library crashes llama.cpp.
  CC=/usr/bin/gcc CXX=/usr/bin/g++ CMAKE_ARGS="-DLLAVA_BUILD=OFF" CMAKE_BUILD_PARALLEL_LEVEL="$(nproc)" \
    python3 -m pip install -q --no-build-isolation --no-deps --target "$site" build/device/llama-cpp-python \
    > "$OUT/build.log" 2>&1 || { tail -40 "$OUT/build.log"; exit 1; }
  echo "llama-cpp-python built in $(( $(date +%s) - start )) s"
fi
mkdir -p /tmp/models
for shape in ${SHAPES:-llama2-7b smollm2-135m}; do
  [ -f "/tmp/models/$shape-q4_0.gguf" ] || python3 -m mpibench synth --shape "$shape" --quant q4_0 --out "/tmp/models/$shape-q4_0.gguf"
done
models=$(for shape in ${SHAPES:-llama2-7b smollm2-135m}; do printf '/tmp/models/%s-q4_0.gguf,' "$shape"; done)
rm -rf "$OUT/scaling"
mpirun --bind-to none -n 2 python3 -m mpibench run --models "${models%,}" --threads "$THREADS" \
  --prompts pi,weather --repetitions "${REPS:-3}" --max-tokens "${TOKENS:-32}" --out "$OUT/scaling" 2>&1 | tail -12
python3 -m mpibench show "$OUT/scaling/results.h5" | tee "$OUT/show.txt"
