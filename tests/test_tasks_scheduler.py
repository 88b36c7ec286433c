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
    order = []
    while not scheduler.done:
        started = scheduler.assign()
        assert started, "scheduler stalled"
        for a in started:
            order.append(a)
            scheduler.complete(a.rank)
    return order


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


def test_worker_keeps_its_group_to_avoid_reloading():
    tasks = expand(config(models="a.gguf,b.gguf"), (1,))
    order = run_to_end(Scheduler(tasks, {1: "n", 2: "n"}, {"n": (0, 1)}))
    by_rank = {}
    for a in order:
        by_rank.setdefault(a.rank, []).append(a.task.group)
    switches = sum(g1 != g2 for groups in by_rank.values() for g1, g2 in zip(groups, groups[1:]))
    assert switches == 0


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
