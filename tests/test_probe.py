"""The read-bandwidth probe: its stopping rule and working set (pure), a real probe on this machine's cores, and
`mpibench probe` under a real mpiexec."""

import math
import os
import re

import pytest

from helpers import mpibench
from mpibench.bandwidth import MAX_PASSES, MAX_SECONDS, METHOD, MIN_WORKING_SET, WINDOW, probe, settled, \
    working_set_bytes
from mpibench.metadata import last_level_cache_bytes
from mpibench.probe import core_sets

CPUS = tuple(sorted(os.sched_getaffinity(0)))


def test_working_set_is_several_last_level_caches_within_memory():
    assert working_set_bytes(32 * 2**20, 24 * 2**30) == MIN_WORKING_SET  # 4 x 32 MiB is under the floor
    assert working_set_bytes(105 * 2**20, 512 * 2**30) == 420 * 2**20
    assert working_set_bytes(512 * 2**20, 8 * 2**30) == 2**30  # 1/8 of memory at most
    assert working_set_bytes(0, 0) == MIN_WORKING_SET  # nothing known: the floor, no cap


def test_passes_stop_once_the_window_is_stable_or_the_cap_is_spent():
    assert not settled([10.0] * (WINDOW - 1), 0.0, 0.1)  # too few passes
    assert settled([5.0, 30.0] + [10.0, 10.1, 9.9, 10.0, 10.05], 0.0, 0.1)  # the last WINDOW vary under 5 %
    assert not settled([10.0, 12.0, 8.0, 11.0, 9.0], 0.0, 0.1)
    assert settled([10.0, 12.0, 8.0, 11.0, 9.0] * (MAX_PASSES // 5), 0.0, 0.1)
    assert settled([10.0, 12.0], 0.0, MAX_SECONDS)


def test_core_sets_are_the_first_cores_a_task_of_each_count_gets():
    assert core_sets((0, 2, 1, 3), (1, 2, 4, 8)) == [(0,), (0, 2), (0, 2, 1, 3)]


def test_a_real_probe_gives_one_row_per_thread_count_on_its_cores():
    sets = core_sets(CPUS, (1, 2))
    rows = probe(sets)
    assert [(r.threads, r.cores) for r in rows] == [(1, str(CPUS[0])), (2, f"{CPUS[0]}-{CPUS[1]}")][:len(sets)]
    for row in rows:
        assert 0.5 < row.gb_per_s < 2000 and 1 <= row.repeats <= MAX_PASSES and math.isfinite(row.cv)
        assert row.method == METHOD and row.working_set_bytes >= min(4 * last_level_cache_bytes(), MIN_WORKING_SET)


def test_probe_command_prints_each_nodes_rows_under_mpiexec():
    done = mpibench(2, "probe", "-t", "1,2", timeout=120)
    assert done.returncode == 0, done.stderr
    rows = [line.split() for line in done.stdout.splitlines() if re.match(r"\S+\s+\d+\s+[\d,-]+\s+[\d.]+", line)]
    assert [row[1] for row in rows] == ["1", "2"][:len(CPUS)] and all(float(row[3]) > 0 for row in rows)


def test_probe_command_refuses_bad_thread_counts_in_one_line():
    done = mpibench(None, "probe", "-t", "0")
    assert done.returncode == 2 and done.stderr.strip() == \
        "mpibench: error: --threads: every value must be a positive integer, got 0"
    too_many = mpibench(None, "probe", "-t", str(len(CPUS) + 1))
    assert too_many.returncode == 1 and "Traceback" not in too_many.stderr
    assert f"{len(CPUS) + 1} threads not probed: this rank has {len(CPUS)} CPUs" in too_many.stderr


@pytest.mark.integration
def test_a_real_bench_run_probes_first_stores_the_rows_and_draws_decode_against_the_roofline(tmp_path):
    import json

    import matplotlib.image

    from mpibench.store.hdf5 import read_results
    from mpibench.store.rundir import rebuild

    out = tmp_path / "run"
    threads = (1, 2)[:len(CPUS)]
    done = mpibench(2, "bench", "-m", "smollm2-135m", "-p", "16", "-n", "8", "-r", "2", "-t",
                    ",".join(map(str, threads)), "--out", str(out))
    assert done.returncode == 0, done.stderr
    assert "mpibench: read bandwidth of " in done.stderr
    results = read_results(out / "results.h5")
    assert [(r["threads"], r["cores"]) for r in results.bandwidth] == \
        [(t, {1: str(CPUS[0]), 2: f"{CPUS[0]}-{CPUS[1]}"}[t]) for t in threads]
    assert all(r["gb_per_s"] > 0 and r["method"] == METHOD for r in results.bandwidth)
    first_task = min(r["started_unix"] for r in results.results)
    assert all(r["probed_unix"] < first_task for r in results.bandwidth)  # before any task, outside every task
    launch = json.loads((out / "run.json").read_text())["launches"][-1]
    # run.json holds the truth, results.h5 is its snapshot (compared as JSON: a NaN CV is not equal to itself)
    assert json.dumps(launch["bandwidth"], sort_keys=True) == json.dumps(results.bandwidth, sort_keys=True)
    for row in results.results:
        if row["prompt_id"] == "tg8":
            assert 0 < row["roofline_fraction"] < 5 and row["bytes_per_token"] > row["model_bytes"]
            assert row["roofline_tok_s"] == pytest.approx(row["decode_tok_s"] / row["roofline_fraction"])
        else:
            assert math.isnan(row["roofline_fraction"])
    exported = json.loads(mpibench(None, "export", str(out / "results.h5"), "--format", "json").stdout)
    assert [r["threads"] for r in exported["bandwidth"]] == list(threads)
    assert "roofline_fraction" in exported["definitions"]
    (out / "results.h5").unlink()
    rebuild(out)
    assert json.dumps(read_results(out / "results.h5").bandwidth) == json.dumps(results.bandwidth)
    image = matplotlib.image.imread(out / "plots" / "decode_roofline.png")
    assert image.shape[1] > 700 and image.std() > 0
    report = (out / "report.md").read_text()
    assert "smollm2-135m, tg8: decode reached " in report and "of its memory roofline at 1 thread" in report
    assert "plots/decode_roofline.png" in report
