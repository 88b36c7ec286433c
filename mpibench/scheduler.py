"""Which task goes to which worker, on which cores (pure state machine).

Measurement isolation: a node runs one task at a time, so no two measurements share its memory
bandwidth; several workers on one node take turns. A task with t threads gets the first t cores of its
node (physical cores first). A worker keeps its model loaded between tasks, so the scheduler prefers to
give a worker more tasks of the group (model, threads) it ran last.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from mpibench.tasks import Task


@dataclass(frozen=True)
class Assignment:
    rank: int
    node: str
    task: Task
    cores: tuple[int, ...]


def unplaceable(tasks: Iterable[Task], node_cores: Mapping[str, tuple[int, ...]]) -> list[Task]:
    """Tasks that need more threads than any node has cores."""
    largest = max((len(c) for c in node_cores.values()), default=0)
    return [t for t in tasks if t.threads > largest]


class Scheduler:
    def __init__(self, tasks: Iterable[Task], worker_nodes: Mapping[int, str], node_cores: Mapping[str, tuple[int, ...]]):
        self.pending: list[Task] = list(tasks)
        self.worker_nodes = dict(worker_nodes)
        self.node_cores = dict(node_cores)
        self.running: dict[int, Assignment] = {}
        self.last_group: dict[int, tuple[str, int]] = {}
        if not self.worker_nodes:
            raise ValueError("no workers to schedule on")
        stuck = unplaceable(self.pending, self.node_cores)
        if stuck:
            raise ValueError(f"{len(stuck)} tasks need more cores than any node has")

    @property
    def done(self) -> bool:
        return not self.pending and not self.running

    def assign(self) -> list[Assignment]:
        """Start as many tasks as free nodes allow; returns the new assignments."""
        busy_nodes = {a.node for a in self.running.values()}
        started = []
        for node, cores in self.node_cores.items():
            if node in busy_nodes:
                continue
            free = [r for r, n in self.worker_nodes.items() if n == node and r not in self.running]
            choice = self._choose(free, len(cores))
            if choice is None:
                continue
            rank, task = choice
            self.pending.remove(task)
            assignment = Assignment(rank, node, task, cores[: task.threads])
            self.running[rank] = assignment
            self.last_group[rank] = task.group
            started.append(assignment)
        return started

    def _choose(self, free_ranks: list[int], n_cores: int) -> tuple[int, Task] | None:
        fitting = [t for t in self.pending if t.threads <= n_cores]
        if not free_ranks or not fitting:
            return None
        for task in fitting:  # keep a worker on the group it has loaded
            for rank in free_ranks:
                if self.last_group.get(rank) == task.group:
                    return rank, task
        task = fitting[0]
        loaded_elsewhere = {self.last_group.get(r) for r in self.worker_nodes if r not in free_ranks}
        if task.group in loaded_elsewhere:  # another worker holds this group: leave it to them
            others = [t for t in fitting if t.group not in loaded_elsewhere]
            task = others[0] if others else task
        fresh = [r for r in free_ranks if r not in self.last_group]
        return (fresh or free_ranks)[0], task

    def complete(self, rank: int) -> Assignment:
        """Mark the task running on `rank` finished; returns its assignment."""
        return self.running.pop(rank)
