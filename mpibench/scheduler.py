"""Which task goes to which worker, on which cores (pure state machine).

Measurement isolation: a node runs one task at a time, so no two measurements share its memory
bandwidth; several workers on one node take turns. A task with t threads gets the first t cores of its
node (physical cores first), and goes only to a node with at least t cores.

Loading costs: a worker keeps its runner (model loaded, thread count set) between tasks of one group
(model, threads), and a node keeps the model files it has read in its page cache. So a free node takes,
in this order: a group one of its workers holds; a model it has read before; a model no other node has
read; a group no worker holds; anything that fits. A large model is read from disk about once per node
that needs it, and no node idles while work that fits it remains.

Handing ahead: once a worker's runner has completed a task of its group, the group's next task is handed
to that worker while the current one runs (one ahead), so that it starts the moment the current one ends.
Isolation holds: a worker runs its tasks one after another.
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
        self.node_cores = {n: c for n, c in node_cores.items() if n in set(self.worker_nodes.values())}
        self.running: dict[int, Assignment] = {}
        self.queued: dict[int, Assignment] = {}  # rank -> the task handed to it ahead, to run next
        self.warm: set[int] = set()  # ranks whose runner completed its group's last task
        self.last_group: dict[int, tuple[str, int]] = {}  # rank -> group its runner holds
        self.node_models: dict[str, set[str]] = {n: set() for n in self.node_cores}  # models each node has read
        if not self.worker_nodes:
            raise ValueError("no workers to schedule on")
        stuck = unplaceable(self.pending, self.node_cores)
        if stuck:
            raise ValueError(f"{len(stuck)} tasks need more cores than any node has")

    @property
    def done(self) -> bool:
        return not self.pending and not self.running

    @property
    def fed(self) -> bool:
        """Every running worker already holds its next task (handed ahead): no node waits on rank 0."""
        return bool(self.running) and all(rank in self.queued for rank in self.running)

    def assign(self) -> list[Assignment]:
        """Start a task on every free node that has one it fits; returns the new assignments."""
        busy_nodes = {a.node for a in self.running.values()}
        started = []
        for node, cores in self.node_cores.items():
            fitting = [t for t in self.pending if t.threads <= len(cores)]
            if node in busy_nodes or not fitting:
                continue
            ranks = [r for r, n in self.worker_nodes.items() if n == node]  # a free node's ranks are all free
            rank, task = self._choose(node, ranks, fitting)
            self.pending.remove(task)
            assignment = Assignment(rank, node, task, cores[: task.threads])
            self.running[rank] = assignment
            self.last_group[rank] = task.group
            self.node_models[node].add(task.model)
            started.append(assignment)
        return started + self._hand_ahead()

    def _hand_ahead(self) -> list[Assignment]:
        """For each warm worker with one task running and none queued, its group's next pending task."""
        ahead = []
        for rank, current in self.running.items():
            if rank in self.warm and rank not in self.queued:
                task = next((t for t in self.pending if t.group == current.task.group), None)
                if task is not None:
                    self.pending.remove(task)
                    self.queued[rank] = Assignment(rank, current.node, task, current.cores)
                    ahead.append(self.queued[rank])
        return ahead

    def _choose(self, node: str, ranks: list[int], fitting: list[Task]) -> tuple[int, Task]:
        held = {self.last_group[r]: r for r in ranks if r in self.last_group}
        for task in fitting:
            if task.group in held:
                return held[task.group], task
        read_here = self.node_models[node]
        read_elsewhere = set().union(*(m for n, m in self.node_models.items() if n != node))
        held_anywhere = set(self.last_group.values())
        preferences = (
            lambda t: t.model in read_here and t.group not in held_anywhere,
            lambda t: t.model in read_here,
            lambda t: t.model not in read_elsewhere,
            lambda t: t.group not in held_anywhere,
        )
        task = next((t for wanted in preferences for t in fitting if wanted(t)), fitting[0])
        return self._rank_for_new_group(ranks), task

    def _rank_for_new_group(self, ranks: list[int]) -> int:
        """A rank whose runner's group is finished (replacing it frees its memory), else one without a runner."""
        pending_groups = {t.group for t in self.pending}
        finished = [r for r in ranks if r in self.last_group and self.last_group[r] not in pending_groups]
        fresh = [r for r in ranks if r not in self.last_group]
        return (finished or fresh or ranks)[0]

    def complete(self, rank: int, ok: bool = True) -> Assignment:
        """Mark the task running on `rank` finished (`ok`: it succeeded); its queued task, if any, runs now.
        Returns the finished task's assignment."""
        finished = self.running.pop(rank)
        if rank in self.queued:
            self.running[rank] = self.queued.pop(rank)
        (self.warm.add if ok else self.warm.discard)(rank)
        return finished

    def drop_model(self, model: str) -> list[Task]:
        """Withdraw the pending and queued tasks of a model (it cannot load); returns them."""
        dropped = [t for t in self.pending if t.model == model]
        self.pending = [t for t in self.pending if t.model != model]
        for rank, queued in list(self.queued.items()):
            if queued.task.model == model:
                dropped.append(self.queued.pop(rank).task)
        return dropped

    def lose_worker(self, rank: int) -> tuple[Assignment | None, list[Task]]:
        """Forget a worker that stopped answering: returns the task it held and the pending tasks that no
        remaining node can run (both withdrawn)."""
        node = self.worker_nodes.pop(rank)
        self.last_group.pop(rank, None)
        self.warm.discard(rank)
        if rank in self.queued:  # handed ahead but never started: it runs elsewhere
            self.pending.insert(0, self.queued.pop(rank).task)
        if node not in self.worker_nodes.values():
            del self.node_cores[node]
            del self.node_models[node]
        stuck = unplaceable(self.pending, self.node_cores)
        self.pending = [t for t in self.pending if t not in stuck]
        return self.running.pop(rank, None), stuck
