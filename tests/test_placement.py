import pytest

from mpibench.config import ConfigError, build_config
from mpibench.sweep import RunError, choose_threads, placement, prepare_run_dir


def fact(host, cpus, siblings=None):
    return {"hostname": host, "cpus": tuple(cpus), "siblings": siblings or {c: (c,) for c in cpus}, "pid": 1}


def test_a_node_offers_the_union_of_its_ranks_cpus_physical_first():
    smt = {0: (0, 2), 2: (0, 2), 1: (1, 3), 3: (1, 3)}
    place = placement([fact("a", [0, 2], smt), fact("a", [1, 3], smt), fact("b", [0])])
    assert place.node_cores == {"a": (0, 1, 2, 3), "b": (0,)}
    assert place.worker_nodes == {1: "a", 2: "b"}  # rank 0 coordinates


def test_a_single_rank_works_itself():
    assert placement([fact("a", [0, 1])]).worker_nodes == {0: "a"}


def test_thread_counts_default_to_the_smallest_node_and_must_fit_the_largest():
    place = placement([fact("a", [0]), fact("a", [0, 1]), fact("b", [0, 1, 2])])
    assert choose_threads(build_config(), place) == (1, 2)
    assert choose_threads(build_config("threads = [3]"), place) == (3,)
    with pytest.raises(ConfigError, match=r"thread counts \[8\] exceed"):
        choose_threads(build_config("threads = [1, 8]"), place)


def test_run_directory_is_never_overwritten_silently(tmp_path):
    config = build_config("", {"out": str(tmp_path / "run")})
    run_dir = prepare_run_dir(config, "id", force=False)
    (run_dir / "journal.jsonl").write_text("{}\n")
    with pytest.raises(RunError, match="--force"):
        prepare_run_dir(config, "id", force=False)
    assert (run_dir / "journal.jsonl").exists()
    prepare_run_dir(config, "id", force=True)
    assert not (run_dir / "journal.jsonl").exists()


def test_unwritable_output_is_a_clear_error(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(RunError, match="not a directory"):
        prepare_run_dir(build_config("", {"out": str(blocker)}), "id", force=False)
    with pytest.raises(RunError, match="cannot write"):
        prepare_run_dir(build_config("", {"out": str(blocker / "sub")}), "id", force=False)
