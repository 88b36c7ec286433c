from pathlib import Path

import pytest

from mpibench.config import ConfigError, build_config
from mpibench.launcher import LaunchError
from mpibench.placement import choose_threads, describe, fit_warnings, placement
from mpibench.store.rundir import RunDirError, create


def facts(*ranks):
    """Rank facts from (hostname, cpus[, siblings]) tuples; a node is the set of ranks with one hostname."""
    leaders = {}
    return [{"hostname": host, "cpus": tuple(cpus), "siblings": rest[0] if rest else {c: (c,) for c in cpus},
             "pid": 1, "node": leaders.setdefault(host, rank), "host": {"logical_cpus": 8}}
            for rank, (host, cpus, *rest) in enumerate(ranks)]


def test_a_node_offers_the_union_of_its_ranks_cpus_physical_first():
    smt = {0: (0, 2), 2: (0, 2), 1: (1, 3), 3: (1, 3)}
    place = placement(facts(("a", [0, 2], smt), ("a", [1, 3], smt), ("b", [0])))
    assert place.node_cores == {"a": (0, 1, 2, 3), "b": (0,)}
    assert place.worker_nodes == {1: "a", 2: "b"}  # rank 0 coordinates
    assert place.node_ranks == {"a": (0, 1), "b": (2,)}
    assert describe(place) == ["node a offers 4 cores (CPUs 0-3 of its 8) to ranks 0-1, rank 0 coordinates",
                               "node b offers 1 core (CPUs 0 of its 8) to rank 2"]


def test_a_single_rank_works_itself():
    place = placement(facts(("a", [0, 1])))
    assert place.worker_nodes == {0: "a"}
    assert describe(place) == ["node a offers 2 cores (CPUs 0-1 of its 8) to rank 0"]


def test_thread_counts_default_to_the_smallest_node_and_must_fit_the_largest():
    place = placement(facts(("a", [0]), ("a", [0, 1]), ("b", [0, 1, 2])))
    assert choose_threads(build_config(), place) == (1, 2)
    assert choose_threads(build_config("threads = [1, 3]"), place) == (1, 3)  # the 3s go to b only
    with pytest.raises(ConfigError, match=r"thread counts \[8\] exceed the cores any node offers this job "
                                          r"\(a offers 2 cores \(CPUs 0-1 of its 8\); b offers 3"):
        choose_threads(build_config("threads = [1, 8]"), place)


def test_a_node_holding_only_the_coordinator_does_not_count():
    place = placement(facts(("login", [0]), ("c1", [0, 1, 2, 3]), ("c2", [0, 1, 2, 3])))
    assert place.worker_node_cores == {"c1": (0, 1, 2, 3), "c2": (0, 1, 2, 3)}
    assert choose_threads(build_config(), place) == (1, 2, 3, 4)


def test_ranks_that_could_run_no_task_are_a_launch_error():
    place = placement(facts(("c1", [0, 1, 2, 3]), ("c1", [4]), ("c2", [0]), ("c2", [1])))
    with pytest.raises(LaunchError, match=r"ranks 2-3 would run no task: c2 offers 2 cores \(CPUs 0-1 of its 8\), "
                                          r"fewer than the smallest thread count 4"):
        choose_threads(build_config("threads = [4, 5]"), place)


def test_a_smaller_node_is_named_with_the_thread_counts_it_skips():
    place = placement(facts(("c1", [0]), ("c1", [0, 1, 2, 3]), ("c2", [0, 1])))
    assert fit_warnings((1, 2, 4), place) == [
        "node c2 offers 2 cores (CPUs 0-1 of its 8): tasks with 4 threads run only on the nodes with enough cores"]
    assert fit_warnings((1, 2), place) == []


def test_nodes_are_told_apart_by_mpi_and_must_have_distinct_hostnames():
    same_name = facts(("a", [0]), ("b", [0]))
    same_name[1]["hostname"] = "a"  # MPI says two nodes (node leaders 0 and 1), both called "a"
    with pytest.raises(LaunchError, match="different nodes but both report the hostname 'a'"):
        placement(same_name)
    two_names = facts(("a", [0]), ("b", [1]))
    two_names[1]["node"] = 0  # MPI says one node, the ranks disagree on its name
    with pytest.raises(LaunchError, match="share a node but report the hostnames 'a' and 'b'"):
        placement(two_names)


def test_run_directory_is_never_overwritten_silently(tmp_path):
    config = build_config("", {"out": str(tmp_path / "run")})
    run_dir = create(Path(config.out), force=False)
    (run_dir / "journal.jsonl").write_text("{}\n")
    with pytest.raises(RunDirError, match="--force"):
        create(Path(config.out), force=False)
    assert (run_dir / "journal.jsonl").exists()
    create(Path(config.out), force=True)
    assert not (run_dir / "journal.jsonl").exists()


def test_unwritable_output_is_a_clear_error(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(RunDirError, match="not a directory"):
        create(blocker, force=False)
    with pytest.raises(RunDirError, match="cannot write"):
        create(blocker / "sub", force=False)
