import pytest

from mpibench.config import build_config
from mpibench.scheduler import Scheduler, unplaceable
from mpibench.tasks import expand


def config(**overrides):
    return build_config("", overrides)


def test_expand_covers_the_matrix_with_stable_unique_ids():
    tasks = expand(config(models="a.gguf,b.gguf", repetitions=2), (1, 2))
    assert len(tasks) == 2 * 2 * 2 * 5
    assert len({t.id for t in tasks}) == len(tasks)
    assert [t.index for t in tasks] == list(range(len(tasks)))
    assert expand(config(models="a.gguf,b.gguf", repetitions=2), (1, 2)) == tasks
    first_group = [t.group for t in tasks[:10]]
    assert first_group == [("a", 1)] * 10  # a group's tasks are contiguous


def run_to_end(scheduler):
    """Run in lockstep (every started task finishes before the next round); no node may idle while work fits it."""
    order = []
    while not scheduler.done:
        started = scheduler.assign()
        assert started, "scheduler stalled"
        for node, cores in scheduler.node_cores.items():
            if node not in {a.node for a in started}:
                assert not [t for t in scheduler.pending if t.threads <= len(cores)], f"{node} idles"
        for a in started:
            order.append(a)
            scheduler.complete(a.rank)
    return order


def loads(order):
    """How many runners were started: a rank starting a group other than the one it holds."""
    held, count = {}, 0
    for a in order:
        count += held.get(a.rank) != a.task.group
        held[a.rank] = a.task.group
    return count


def test_every_task_once_and_one_task_per_node_at_a_time():
    tasks = expand(config(models="a.gguf,b.gguf"), (1, 2))
    scheduler = Scheduler(tasks, {1: "n1", 2: "n1", 3: "n2"}, {"n1": (0, 1), "n2": (4, 5)})
    started = scheduler.assign()
    assert sorted(a.node for a in started) == ["n1", "n2"]  # isolation: one per node
    assert scheduler.assign() == []
    for a in started:
        scheduler.complete(a.rank)
    rest = run_to_end(scheduler)
    assert sorted(a.task.id for a in started + rest) == sorted(t.id for t in tasks)


def test_cores_are_the_first_of_the_node_and_match_threads():
    tasks = expand(config(), (1, 2))
    for a in run_to_end(Scheduler(tasks, {1: "n"}, {"n": (3, 7, 5)})):
        assert a.cores == (3, 7, 5)[: a.task.threads]


def test_each_group_is_loaded_once_and_a_finished_runner_is_replaced_not_kept():
    tasks = expand(config(models="a.gguf,b.gguf", repetitions=2), (1, 2))
    order = run_to_end(Scheduler(tasks, {1: "n", 2: "n"}, {"n": (0, 1)}))
    assert loads(order) == 4  # (a,1) (a,2) (b,1) (b,2): one runner each
    assert {a.rank for a in order} == {1}  # rank 2 never holds a second model in the node's memory


def test_a_model_stays_on_the_node_that_read_it():
    tasks = expand(config(models="a.gguf,b.gguf,c.gguf"), (1, 2))
    order = run_to_end(Scheduler(tasks, {1: "n1", 2: "n2", 3: "n3"}, {n: (0, 1) for n in ("n1", "n2", "n3")}))
    nodes = {}
    for a in order:
        nodes.setdefault(a.task.model, set()).add(a.node)
    assert sorted(map(sorted, nodes.values())) == [["n1"], ["n2"], ["n3"]]
    assert loads(order) == 6


def test_one_model_on_two_nodes_is_read_once_per_node_and_splits_its_groups():
    tasks = expand(config(repetitions=2), (1, 2, 4))
    scheduler = Scheduler(tasks, {1: "n1", 2: "n2"}, {"n1": (0, 1, 2, 3), "n2": (0, 1, 2, 3)})
    first = scheduler.assign()
    assert {a.task.group for a in first} == {("smollm2-135m", 1), ("smollm2-135m", 2)}
    for a in first:
        scheduler.complete(a.rank)
    order = first + run_to_end(scheduler)
    assert loads(order) <= 4  # 3 groups; only the last may be shared by both nodes
    assert len(order) == len(tasks)


def test_heterogeneous_nodes_get_only_tasks_that_fit():
    tasks = expand(config(), (1, 4))
    order = run_to_end(Scheduler(tasks, {1: "small", 2: "big"}, {"small": (0, 1), "big": (0, 1, 2, 3)}))
    assert all(a.node == "big" for a in order if a.task.threads == 4)
    assert len(order) == len(tasks)


def test_tasks_that_fit_no_node_are_refused():
    tasks = expand(config(), (1, 8))
    assert {t.threads for t in unplaceable(tasks, {"n": (0, 1)})} == {8}
    with pytest.raises(ValueError, match="more cores"):
        Scheduler(tasks, {1: "n"}, {"n": (0, 1)})


def test_a_warm_worker_gets_its_groups_next_task_ahead_and_runs_it_next():
    tasks = expand(build_config("", {"prompts": "pi,weather,story"}), (1,))
    scheduler = Scheduler(tasks, {1: "n1", 2: "n1"}, {"n1": (0, 1)})
    (first,) = scheduler.assign()
    assert scheduler.assign() == []  # nothing ahead until the runner has served its group once
    scheduler.complete(first.rank)
    second, ahead = scheduler.assign()
    assert (second.rank, ahead.rank) == (first.rank, first.rank) and ahead.task == tasks[2]
    assert scheduler.running[first.rank] is second and scheduler.queued[first.rank] is ahead
    scheduler.complete(first.rank)
    assert scheduler.running[first.rank] is ahead and scheduler.assign() == []
    scheduler.complete(first.rank, ok=False)
    assert scheduler.done


def test_queued_tasks_are_withdrawn_with_their_model_and_rejoin_pending_when_their_worker_is_lost():
    tasks = expand(build_config("", {"prompts": "pi,weather,story,integral"}), (1,))
    scheduler = Scheduler(tasks, {1: "n1", 2: "n2"}, {"n1": (0,), "n2": (0,)})
    scheduler.assign()
    rank = next(iter(scheduler.running))
    scheduler.complete(rank)
    ahead = [a for a in scheduler.assign() if scheduler.queued.get(a.rank) is a]
    assert ahead and scheduler.lose_worker(ahead[0].rank)[0] is not None
    assert ahead[0].task in scheduler.pending
    scheduler = Scheduler(tasks, {1: "n1"}, {"n1": (0,)})
    scheduler.assign()
    scheduler.complete(1)
    scheduler.assign()
    assert sorted(t.id for t in scheduler.drop_model(tasks[0].model)) == sorted(t.id for t in tasks[2:])
    assert not scheduler.queued and len(scheduler.running) == 1
