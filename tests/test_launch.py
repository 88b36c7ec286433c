"""Launching: the checks of a wrong launch, and the launch scripts (parsed, and run in their dry-run mode).

No cluster here: the Slurm and PBS scripts are checked by reading their directives and by the commands
their dry runs print, outside a job (values from the directives) and inside a simulated one (values from
the batch system's variables, the script run from a spool copy as sbatch and qsub do).
"""

import os
import re
import shlex
import shutil
import subprocess

import pytest

import mpi_venvs
from helpers import mpi_env
from mpibench.launcher import LaunchError, check_library, check_world_size, launch_environment, relaunch_command

ROOT = mpi_venvs.ROOT
PYTHON = f"{ROOT}/.venv/bin/python"  # the scripts' default venv


def test_a_world_smaller_than_the_launcher_started_is_refused():
    check_world_size(4, {"PMI_SIZE": "4"})
    check_world_size(1, {})
    with pytest.raises(LaunchError, match="started 3 ranks but MPI sees a world of 1.*srun --mpi=pmix"):
        check_world_size(1, {"SLURM_STEP_NUM_TASKS": "3", "SLURM_JOB_ID": "7"})
    with pytest.raises(LaunchError, match="started 2 ranks but MPI sees a world of 1.*mpirun of the MPI"):
        check_world_size(1, {"OMPI_COMM_WORLD_SIZE": "2"})


def test_open_mpi_mpirun_with_another_mpi_is_refused_before_mpi_starts():
    check_library("Open MPI v5.0.11, package: ...\nmore", {"OMPI_COMM_WORLD_SIZE": "2"})
    check_library("MPICH Version:      5.0.2\n", {"PMI_SIZE": "2"})
    with pytest.raises(LaunchError, match="mpi4py loads MPICH Version: 5.0.2; use the mpirun"):
        check_library("MPICH Version:      5.0.2\n", {"OMPI_COMM_WORLD_SIZE": "2"})


def test_the_resume_command_is_launched_as_the_run_was():
    args = ["--resume", "results/my run"]
    assert relaunch_command(3, "run", args, {}) == "mpiexec -n 3 mpibench run --resume 'results/my run'"
    assert relaunch_command(1, "bench", args, {}) == "mpibench bench --resume 'results/my run'"
    slurm = {"MPIBENCH_LAUNCH_SCRIPT": "launch/slurm.sbatch", "SLURM_JOB_ID": "7"}
    assert relaunch_command(4, "run", args, slurm) == "sbatch launch/slurm.sbatch --resume 'results/my run'"
    pbs = {"MPIBENCH_LAUNCH_SCRIPT": "launch/pbs.qsub"}
    assert relaunch_command(4, "run", ["--resume", "results/r1", "--retry-failed"], pbs) == \
        "qsub -v MPIBENCH_ARGS='--resume results/r1 --retry-failed' launch/pbs.qsub"


def test_the_launch_environment_keeps_layout_and_binding_only():
    env = {"SLURM_JOB_ID": "7", "SLURM_CPU_BIND": "verbose,cores", "SLURM_CPUS_PER_TASK": "8", "HOME": "/root",
           "PBS_O_PATH": "/bin", "MPIBENCH_LAUNCH_SCRIPT": "launch/slurm.sbatch", "OMPI_MCA_hwloc_base_binding_policy": "core"}
    assert launch_environment(env) == {
        "MPIBENCH_LAUNCH_SCRIPT": "launch/slurm.sbatch", "OMPI_MCA_hwloc_base_binding_policy": "core",
        "SLURM_CPUS_PER_TASK": "8", "SLURM_CPU_BIND": "verbose,cores", "SLURM_JOB_ID": "7"}


@pytest.mark.integration
@pytest.mark.parametrize("launcher, python, message", [
    ("openmpi", "mpich", "Open MPI's mpirun started this rank, but mpi4py loads MPICH"),
    ("mpich", "openmpi", "the launcher started 2 ranks but MPI sees a world of 1"),
], ids=["openmpi-mpirun-mpich-python", "mpich-mpiexec-openmpi-python"])
def test_an_mpirun_of_the_other_mpi_stops_every_rank_with_a_clear_message(tmp_path, launcher, python, message):
    venvs = mpi_venvs.venvs()
    proc = subprocess.run([str(venvs[launcher] / "bin/mpiexec"), "-n", "2", str(venvs[python] / "bin/python"),
                           "-m", "mpibench", "run", "--threads", "1", "--out", str(tmp_path / "run")],
                          capture_output=True, text=True, timeout=120, env=mpi_env())
    assert proc.returncode != 0
    assert f"mpibench: error: {message}" in proc.stderr  # Open MPI may kill the other rank before it says so
    assert "Traceback" not in proc.stderr and not (tmp_path / "run").exists()


# --- the scripts ---------------------------------------------------------------------------------------

def directives(script: str, prefix: str) -> list[str]:
    """The batch directives of a script; they must come before its first command, as sbatch and qsub read them."""
    lines = (ROOT / script).read_text().splitlines()
    first_command = next(i for i, line in enumerate(lines) if line.strip() and not line.startswith("#"))
    assert not [line for line in lines[first_command:] if line.startswith(prefix)], "directive after a command"
    return [line[len(prefix):].split("#")[0].strip() for line in lines[:first_command] if line.startswith(prefix)]


def dry_run(script: str, *args: str, cwd=ROOT, **env: str) -> list[str]:
    """The command a script prints in its dry-run mode, as an argument list."""
    environ = {k: v for k, v in os.environ.items() if not k.startswith(("SLURM_", "PBS_", "MPIBENCH_"))}
    proc = subprocess.run(["bash", script, "--dry-run", *args], cwd=cwd, capture_output=True, text=True,
                          timeout=60, env=dict(environ, **env))
    assert proc.returncode == 0, proc.stderr
    return shlex.split(proc.stdout.strip().splitlines()[-1])


def failure(script: str, **env: str) -> str:
    proc = subprocess.run(["bash", script, "--dry-run"], cwd=ROOT, capture_output=True, text=True, timeout=60,
                          env=dict(os.environ, **env))
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    (line,) = proc.stderr.strip().splitlines()
    return line


def options(command: list[str]) -> dict[str, str]:
    return dict(re.match(r"(--[\w-]+)=(.*)", word).groups() for word in command if re.match(r"--[\w-]+=", word))


@pytest.mark.parametrize("script", ["launch/quickstart.sh", "launch/setup.sh", "launch/mpirun.sh",
                                    "launch/slurm.sbatch", "launch/pbs.qsub", "launch/build-portable.sh"])
def test_every_script_is_valid_bash_and_executable(script):
    assert subprocess.run(["bash", "-n", script], cwd=ROOT).returncode == 0
    assert os.access(ROOT / script, os.X_OK)


def test_slurm_directives_ask_for_whole_nodes_and_a_layout():
    found = dict(d.split("=", 1) if "=" in d else (d, "") for d in directives("launch/slurm.sbatch", "#SBATCH "))
    assert set(found) == {"--job-name", "--nodes", "--ntasks-per-node", "--cpus-per-task", "--exclusive",
                          "--mem", "--time", "--output"}
    assert all(found[k].isdigit() for k in ("--nodes", "--ntasks-per-node", "--cpus-per-task"))
    assert re.fullmatch(r"\d+:\d\d:\d\d", found["--time"]) and found["--mem"] == "0"


def test_slurm_dry_run_outside_a_job_takes_the_directives():
    found = dict(d.split("=", 1) for d in directives("launch/slurm.sbatch", "#SBATCH ") if "=" in d)
    command = dry_run("launch/slurm.sbatch", "--threads", "1,2", "--out", "my run")
    assert command[0] == "srun"
    nodes, per_node = int(found["--nodes"]), int(found["--ntasks-per-node"])
    assert options(command) == {"--nodes": str(nodes), "--ntasks": str(nodes * per_node),
                                "--ntasks-per-node": str(per_node), "--cpus-per-task": found["--cpus-per-task"],
                                "--cpu-bind": "verbose,cores", "--distribution": "block:block"}
    assert command[-8:] == [PYTHON, "-m", "mpibench", "run", "--threads", "1,2", "--out", "my run"]


def test_slurm_dry_run_inside_a_job_takes_slurms_values(tmp_path):
    spool = tmp_path / "slurm_script"  # sbatch runs a copy; the checkout is the submit directory
    shutil.copy(ROOT / "launch/slurm.sbatch", spool)
    command = dry_run(str(spool), "launch/study.toml", cwd=tmp_path, SLURM_JOB_ID="42", SLURM_JOB_NUM_NODES="3",
                      SLURM_NTASKS_PER_NODE="2", SLURM_CPUS_PER_TASK="24", SLURM_SUBMIT_DIR=str(ROOT),
                      SRUN_MPI="pmi2", BIND="sockets")
    assert options(command) == {"--nodes": "3", "--ntasks": "6", "--ntasks-per-node": "2", "--cpus-per-task": "24",
                                "--cpu-bind": "verbose,sockets", "--distribution": "block:block", "--mpi": "pmi2"}
    assert command[-5:] == [PYTHON, "-m", "mpibench", "run", "launch/study.toml"]


def test_slurm_can_hand_the_allocation_to_mpirun():
    command = dry_run("launch/slurm.sbatch", LAUNCHER="mpirun", MPI_FLAVOR="mpich", SLURM_JOB_NUM_NODES="2",
                      SLURM_NTASKS_PER_NODE="2", SLURM_CPUS_PER_TASK="8", SLURM_JOB_NODELIST="c[1-2]")
    assert command[1:12] == ["-n", "4", "-hosts", command[4], "-ppn", "2", "-bind-to", "core:8", "-map-by", "core:8",
                             PYTHON]
    assert command[4] in ("c1,c2", "node1,node2")  # scontrol expands the node list where Slurm is installed


def test_slurm_bad_settings_are_one_line_errors():
    assert failure("launch/slurm.sbatch", BIND="threads") == "slurm.sbatch: error: BIND must be cores or sockets, not 'threads'"
    assert "must be set to a positive number" in failure("launch/slurm.sbatch", SLURM_CPUS_PER_TASK="0")
    assert "is not the mpibench checkout" in failure("launch/slurm.sbatch", MPIBENCH_HOME="/")


def test_pbs_directives_ask_for_nodes_cores_and_ranks():
    found = directives("launch/pbs.qsub", "#PBS ")
    (select,) = [d for d in found if d.startswith("-l select=")]
    chunks, *resources = select.removeprefix("-l select=").split(":")
    resources = dict(r.split("=") for r in resources)
    assert chunks.isdigit() and resources["ncpus"].isdigit() and resources["mpiprocs"].isdigit()
    assert {"-N mpibench", "-l place=scatter:excl", "-j oe"} <= set(found)
    assert any(re.fullmatch(r"-l walltime=\d+:\d\d:\d\d", d) for d in found)
    torque = re.search(r"^##PBS -l nodes=(\d+):ppn=(\d+)$", (ROOT / "launch/pbs.qsub").read_text(), re.M)
    assert torque.groups() == (chunks, resources["ncpus"])  # the Torque line asks for the same


def test_pbs_dry_run_outside_a_job_takes_the_select_line():
    command = dry_run("launch/pbs.qsub", "--threads", "1,2", MPI_FLAVOR="mpich")
    assert command[1:11] == ["-n", "4", "-hosts", "node1,node2", "-ppn", "2", "-bind-to", "core:32",
                             "-map-by", "core:32"]
    assert command[-6:] == [PYTHON, "-m", "mpibench", "run", "--threads", "1,2"]


def test_pbs_dry_run_inside_a_job_takes_the_nodefile_and_ncpus(tmp_path):
    nodefile = tmp_path / "nodes"
    nodefile.write_text("cn07\ncn07\ncn09\ncn09\n")  # PBS lists a node once per MPI process
    spool = tmp_path / "42.pbs"
    shutil.copy(ROOT / "launch/pbs.qsub", spool)
    command = dry_run(str(spool), cwd=tmp_path, PBS_NODEFILE=str(nodefile), PBS_O_WORKDIR=str(ROOT), NCPUS="16",
                      MPI_FLAVOR="openmpi", MPIBENCH_ARGS="launch/study.toml --repetitions 3")
    assert command[1:9] == ["-n", "4", "--host", "cn07:2,cn09:2", "--map-by", "ppr:2:node:PE=8", "--bind-to", "core"]
    assert "--report-bindings" in command
    assert command[-7:] == [PYTHON, "-m", "mpibench", "run", "launch/study.toml",
                            "--repetitions", "3"]


def test_mpirun_reads_open_mpi_and_mpich_hostfiles(tmp_path):
    hostfile = tmp_path / "hosts"
    hostfile.write_text("# the first host gets rank 0\na slots=8\nb:8\n\na slots=8\n")
    command = dry_run("launch/mpirun.sh", "x", HOSTFILE=str(hostfile), MPI_FLAVOR="mpich", RANKS_PER_NODE="4",
                      CORES_PER_RANK="2")
    assert command[1:11] == ["-n", "8", "-hosts", "a,b", "-ppn", "4", "-bind-to", "core:2", "-map-by", "core:2"]
    command = dry_run("launch/mpirun.sh", HOSTS="a, b", MPI_FLAVOR="openmpi", LAYOUT="socket", RANKS_PER_NODE="2")
    assert command[1:9] == ["-n", "4", "--host", "a:2,b:2", "--map-by", "ppr:1:package", "--bind-to", "package"]


def test_mpirun_runs_a_load_test_when_asked():
    command = dry_run("launch/mpirun.sh", "load", "--replicas", "all", HOSTS="a,b", MPI_FLAVOR="mpich")
    assert command[-5:] == ["-m", "mpibench", "load", "--replicas", "all"]


def test_mpirun_bad_settings_are_one_line_errors():
    assert failure("launch/mpirun.sh", RANKS_PER_NODE="two") == \
        "mpirun.sh: error: RANKS_PER_NODE must be a positive whole number, not 'two'"
    assert "LAYOUT must be node or socket" in failure("launch/mpirun.sh", LAYOUT="numa")
    assert "cannot read HOSTFILE" in failure("launch/mpirun.sh", HOSTFILE="/nonexistent")
    assert "MPI_FLAVOR must be openmpi or mpich" in failure("launch/mpirun.sh", MPI_FLAVOR="lam")


def test_quickstart_and_portable_build_dry_runs_print_their_commands():
    quick = subprocess.run(["bash", "launch/quickstart.sh", "--dry-run", "--threads", "1"], cwd=ROOT,
                           capture_output=True, text=True, timeout=60)
    assert quick.stdout.splitlines() == ["bash launch/setup.sh", ".venv/bin/mpiexec -n 3 .venv/bin/mpibench run --threads 1"]
    build = subprocess.run(["bash", "launch/build-portable.sh", "--dry-run"], cwd=ROOT, capture_output=True,
                           text=True, timeout=60)
    first = shlex.split(build.stdout.splitlines()[0])
    assert first[1] == "CMAKE_ARGS=-DGGML_NATIVE=OFF -DGGML_BACKEND_DL=ON -DGGML_CPU_ALL_VARIANTS=ON"
    assert "--no-cache-dir" in first and "--no-binary" in first
