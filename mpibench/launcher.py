"""What the launcher meant, read from the environment: the world size it started, the job and binding it used.

A wrong launch shows here first: an `mpirun` or `srun` from another MPI than mpi4py's starts N one-rank
jobs, each believing it is alone; the launcher's own variables still say N.
"""

from __future__ import annotations

import os
import shlex
from collections.abc import Mapping

SIZE_VARIABLES = ("OMPI_COMM_WORLD_SIZE", "PMI_SIZE", "PMIX_SIZE", "SLURM_STEP_NUM_TASKS")
# Variables worth keeping with the results: the batch job, the layout and binding asked for, and the
# launch script's own record of the command it ran (launch/*.sh set MPIBENCH_LAUNCH_*).
RECORDED_PREFIXES = (
    "SLURM_JOB_ID", "SLURM_JOB_NAME", "SLURM_JOB_NODELIST", "SLURM_JOB_NUM_NODES", "SLURM_JOB_PARTITION",
    "SLURM_CLUSTER_NAME", "SLURM_NTASKS", "SLURM_CPUS_PER_TASK", "SLURM_CPUS_ON_NODE", "SLURM_CPU_BIND",
    "SLURM_DISTRIBUTION", "SLURM_HINT", "SLURM_STEP_NUM_", "SLURM_MPI_TYPE",
    "PBS_JOBID", "PBS_JOBNAME", "PBS_QUEUE", "PBS_NUM_NODES", "PBS_NUM_PPN", "PBS_NP", "NCPUS",
    "OMPI_COMM_WORLD_SIZE", "OMPI_COMM_WORLD_LOCAL_SIZE", "OMPI_MCA_hwloc", "OMPI_MCA_rmaps",
    "PRTE_MCA_hwloc", "PRTE_MCA_rmaps", "PMI_SIZE", "PMIX_SIZE", "HYDRA_", "MPIBENCH_LAUNCH",
)


# The launch scripts' own command lines, to start `mpibench run ARGS` again as they did (they run `run` only;
# a bench run resumes through `run --resume` too, since a resumed run keeps its own kind).
RELAUNCH = {"launch/slurm.sbatch": "sbatch launch/slurm.sbatch {args}",
            "launch/pbs.qsub": "qsub -v MPIBENCH_ARGS={args} launch/pbs.qsub",
            "launch/mpirun.sh": "bash launch/mpirun.sh {args}"}


class LaunchError(Exception):
    """The job was launched in a way mpibench cannot measure with; the message says how to launch it."""


def world_size(environ: Mapping[str, str] = os.environ) -> int | None:
    """How many ranks the launcher meant to start, when it says so in the environment."""
    for name in SIZE_VARIABLES:
        if environ.get(name, "").isdigit():
            return int(environ[name])
    return None


def check_library(library_version: str, environ: Mapping[str, str] = os.environ) -> None:
    """Before MPI starts: Open MPI's mpirun cannot start ranks of another MPI (MPICH would abort in MPI_Init)."""
    library = " ".join(library_version.strip().splitlines()[0].split())
    if "OMPI_COMM_WORLD_SIZE" in environ and "Open MPI" not in library:
        raise LaunchError(f"Open MPI's mpirun started this rank, but mpi4py loads {library}; use the mpirun of "
                          "that MPI (the one beside this Python), or install mpibench with MPIBENCH_MPI=openmpi")


def check_world_size(size: int, environ: Mapping[str, str] = os.environ) -> None:
    """The MPI world must have as many ranks as the launcher started."""
    expected = world_size(environ)
    if expected is None or expected == size:
        return
    hint = ("under Slurm, srun must speak your MPI's PMI: try srun --mpi=pmix or --mpi=pmi2 (srun --mpi=list), "
            "or launch with your MPI's mpirun inside the allocation" if "SLURM_JOB_ID" in environ else
            "use the mpirun of the MPI that mpi4py loads (python -c 'import mpi4py.MPI as M; "
            "print(M.Get_library_version())')")
    raise LaunchError(f"the launcher started {expected} ranks but MPI sees a world of {size}: each rank runs "
                      f"alone, so the launcher and mpi4py's MPI do not match; {hint}")


def launch_environment(environ: Mapping[str, str] = os.environ) -> dict[str, str]:
    """The launcher's variables that say how this job was laid out and bound, for the run's metadata."""
    return {k: v for k, v in sorted(environ.items()) if k.startswith(RECORDED_PREFIXES)}


def relaunch_command(world_size: int, command: str, args: list[str], environ: Mapping[str, str] = os.environ) -> str:
    """`mpibench COMMAND ARGS` launched as this job was: through the launch script that started it, under
    `mpiexec -n N` for N ranks, or alone."""
    script = environ.get("MPIBENCH_LAUNCH_SCRIPT", "")
    if script in RELAUNCH:
        return RELAUNCH[script].format(args=shlex.quote(shlex.join(args)) if "qsub" in script else shlex.join(args))
    launch = f"mpiexec -n {world_size} " if world_size > 1 else ""
    return f"{launch}mpibench {command} {shlex.join(args)}"
