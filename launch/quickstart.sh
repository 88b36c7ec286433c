#!/usr/bin/env bash
# Laptop quickstart: install (launch/setup.sh), then run the default sweep with 3 ranks: rank 0 coordinates,
# the workers run the builtin SmolLM2-135M on the five study queries at every thread count up to this
# machine's cores, one task at a time (a second worker on one machine is a spare). Results and plots land
# in results/<run-id>/. Extra arguments go to `mpibench run`:
#   bash launch/quickstart.sh --threads 1,2 --repetitions 3
#   bash launch/quickstart.sh --dry-run          # print the commands, run nothing
#   MPIBENCH_RANKS=2 bash launch/quickstart.sh   # 2 ranks: one worker
# Several machines: launch/mpirun.sh; a cluster: launch/slurm.sbatch or launch/pbs.qsub.
set -euo pipefail
cd "$(dirname "$0")/.."
run=()
if [ "${1:-}" = --dry-run ]; then run=(echo); shift; fi
"${run[@]}" bash launch/setup.sh
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1  # only read by Open MPI, needed as root
exec "${run[@]}" .venv/bin/mpiexec -n "${MPIBENCH_RANKS:-3}" .venv/bin/mpibench run "$@"
