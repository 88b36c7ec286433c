"""Where tasks can run: nodes from the ranks' facts, the cores each node offers, and checks of the launch.

A node is what MPI's node-local communicator says it is (ranks that share memory), named by its hostname.
It offers the union of the CPU sets of this job's ranks on it, physical cores first, so placement follows
a Slurm allocation, an mpirun binding or a whole laptop alike. Rank 0 coordinates and runs no tasks
unless it is alone.
"""

from __future__ import annotations

from dataclasses import dataclass

from mpibench.affinity import format_cpu_list, physical_first
from mpibench.config import ConfigError, SweepConfig, default_thread_counts
from mpibench.launcher import LaunchError


@dataclass(frozen=True)
class Placement:
    worker_nodes: dict[int, str]  # rank -> hostname of the node it runs tasks on
    node_cores: dict[str, tuple[int, ...]]  # hostname -> its cores, physical first (every node of the job)
    node_ranks: dict[str, tuple[int, ...]]  # hostname -> the ranks on it
    node_cpus: dict[str, int]  # hostname -> logical CPUs the node has in all

    @property
    def worker_node_cores(self) -> dict[str, tuple[int, ...]]:
        """Cores of the nodes that have a worker rank (a node holding only the coordinator runs nothing)."""
        nodes = set(self.worker_nodes.values())
        return {n: c for n, c in self.node_cores.items() if n in nodes}


def placement(facts: list[dict]) -> Placement:
    """Nodes from the ranks' facts (each with "node": the lowest world rank on its node, and "hostname")."""
    names: dict[int, str] = {}
    for rank, fact in enumerate(facts):
        name = names.setdefault(fact["node"], facts[fact["node"]]["hostname"])
        if fact["hostname"] != name:
            raise LaunchError(f"ranks {fact['node']} and {rank} share a node but report the hostnames {name!r} "
                              f"and {fact['hostname']!r}; run all ranks of a node in one hostname namespace")
    seen: dict[str, int] = {}
    for node, name in names.items():
        if seen.setdefault(name, node) != node:
            raise LaunchError(f"ranks {seen[name]} and {node} are on different nodes but both report the hostname "
                              f"{name!r}; mpibench tells nodes apart by hostname, so give each node its own")
    cpus: dict[str, set[int]] = {}
    siblings: dict[str, dict] = {}
    ranks: dict[str, list[int]] = {}
    for rank, fact in enumerate(facts):
        cpus.setdefault(fact["hostname"], set()).update(fact["cpus"])
        siblings.setdefault(fact["hostname"], {}).update(fact["siblings"])
        ranks.setdefault(fact["hostname"], []).append(rank)
    workers = range(1, len(facts)) if len(facts) > 1 else range(1)
    return Placement(
        worker_nodes={r: facts[r]["hostname"] for r in workers},
        node_cores={host: physical_first(c, siblings[host]) for host, c in cpus.items()},
        node_ranks={host: tuple(r) for host, r in ranks.items()},
        node_cpus={f["hostname"]: f["host"]["logical_cpus"] for f in facts},
    )


def _ranks_text(ranks) -> str:
    return ("rank " if len(ranks) == 1 else "ranks ") + format_cpu_list(ranks)


def _offer(place: Placement, node: str) -> str:
    cores = place.node_cores[node]
    noun = "core" if len(cores) == 1 else "cores"
    return f"{node} offers {len(cores)} {noun} (CPUs {format_cpu_list(cores)} of its {place.node_cpus[node]})"


def describe(place: Placement) -> list[str]:
    """One line a node: its ranks and the CPUs they were bound to, as the launcher actually bound them."""
    lines = []
    for node, ranks in place.node_ranks.items():
        role = ", rank 0 coordinates" if 0 in ranks and place.worker_nodes.get(0) != node else ""
        lines.append(f"node {_offer(place, node)} to {_ranks_text(ranks)}{role}")
    return lines


def choose_threads(config: SweepConfig, place: Placement) -> tuple[int, ...]:
    """The thread counts to sweep: as configured (each must fit some node) or every count up to the smallest node.

    Also refuses worker ranks that could run no task at all: their node offers fewer cores than the
    smallest thread count (a binding too narrow, or a node too small for this sweep).
    """
    nodes = place.worker_node_cores
    if config.threads is None:
        return default_thread_counts(min(len(c) for c in nodes.values()))
    largest = max(len(c) for c in nodes.values())
    too_many = [t for t in config.threads if t > largest]
    if too_many:
        offers = "; ".join(_offer(place, n) for n in nodes)
        raise ConfigError(f"thread counts {too_many} exceed the cores any node offers this job ({offers}); "
                          "use smaller counts or give the ranks more cores (srun --cpus-per-task, "
                          "mpirun --map-by ppr:N:node:PE=n, see launch/)")
    idle = [n for n, c in nodes.items() if len(c) < min(config.threads)]
    if idle:
        ranks = [r for r, n in place.worker_nodes.items() if n in idle]
        raise LaunchError(f"{_ranks_text(ranks)} would run no task: {'; '.join(_offer(place, n) for n in idle)}, "
                          f"fewer than the smallest thread count {min(config.threads)}; give those ranks more "
                          "cores or leave those nodes out")
    return config.threads


def fit_warnings(threads: tuple[int, ...], place: Placement) -> list[str]:
    """Nodes that cannot run every thread count: their tasks go to the larger nodes only."""
    nodes = place.worker_node_cores
    warnings = []
    for node, cores in nodes.items():
        skipped = [t for t in threads if t > len(cores)]
        if skipped:
            warnings.append(f"node {_offer(place, node)}: tasks with {','.join(map(str, skipped))} threads "
                            "run only on the nodes with enough cores")
    return warnings
