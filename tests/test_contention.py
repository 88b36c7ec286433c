"""Other work on a task's pinned cores: /proc/stat arithmetic (pure), and a real competitor pinned to the core
of a real sweep's runner (integration)."""

import os
import subprocess
import sys

import pytest

from helpers import mpibench
from mpibench.contention import TICK_S, CoreTimes, assess, core_times
from mpibench.store.hdf5 import read_results

STAT = """cpu  500 0 200 9000 0 0 0 30 0 0
cpu0 100 5 50 4000 10 3 2 20 0 0
cpu1 400 0 150 5000 0 0 0 10 0 0
intr 12345
"""


def test_core_times_sum_the_busy_and_steal_ticks_of_the_given_cpus():
    assert core_times(STAT, [0]) == CoreTimes(160 * TICK_S, 20 * TICK_S)  # user+nice+system+irq+softirq
    assert core_times(STAT, [0, 1]) == CoreTimes(710 * TICK_S, 30 * TICK_S)
    assert core_times(STAT, [7]) == CoreTimes(0.0, 0.0)


def test_a_task_is_contended_when_other_work_takes_more_than_a_tenth_of_its_cores():
    start = CoreTimes(100.0, 5.0)
    alone = assess(start, CoreTimes(101.02, 5.0), own_cpu_s=1.0, seconds=1.0, cores=1)
    assert (alone.other_cpu_s, alone.contended) == (pytest.approx(0.02), 0)
    shared = assess(start, CoreTimes(102.0, 5.0), own_cpu_s=1.0, seconds=2.0, cores=1)
    assert (shared.contention_share, shared.contended) == (pytest.approx(0.5), 1)
    stolen = assess(start, CoreTimes(104.0, 5.6), own_cpu_s=4.0, seconds=2.0, cores=2)
    assert (stolen.steal_s, stolen.contention_share, stolen.contended) == (pytest.approx(0.6), pytest.approx(0.15), 1)


def test_clock_tick_rounding_alone_never_flags_a_short_task():
    # 0.1 s on one core: two ticks of rounding are 20 % of it, still not contention
    rounded = assess(CoreTimes(0.0, 0.0), CoreTimes(0.1 + 1.9 * TICK_S, 0.0), own_cpu_s=0.1, seconds=0.1, cores=1)
    assert rounded.contention_share > 0.1 and rounded.contended == 0


SWEEP = ("--models", "smollm2-135m", "--prompts", "pi", "--threads", "1", "--repetitions", "3", "--max-tokens",
         "48", "--no-plots")


@pytest.mark.integration
def test_a_competitor_on_the_runners_core_flags_its_tasks_and_none_without_it(tmp_path):
    quiet = mpibench(2, "run", *SWEEP, "--out", str(tmp_path / "quiet"))
    assert quiet.returncode == 0, quiet.stderr
    core = int(read_results(tmp_path / "quiet" / "results.h5").results[0]["cores"])  # a 1-thread task's core
    spin = "import os, sys; os.sched_setaffinity(0, {%d}); sys.stdout.write('go\\n'); sys.stdout.flush()\nwhile True: pass"
    competitor = subprocess.Popen([sys.executable, "-c", spin % core], stdout=subprocess.PIPE, text=True)
    try:
        assert competitor.stdout.readline() == "go\n"
        shared = mpibench(2, "run", *SWEEP, "--out", str(tmp_path / "shared"))
    finally:
        competitor.kill()
        competitor.wait()
    assert shared.returncode == 0, shared.stderr
    alone = [r for r in read_results(tmp_path / "quiet" / "results.h5").results if not r["warmup"]]
    beside = [r for r in read_results(tmp_path / "shared" / "results.h5").results if not r["warmup"]]
    print("alone:", [(round(r["contention_share"], 3), r["contended"]) for r in alone])
    print("beside a competitor:", [(round(r["contention_share"], 3), r["contended"]) for r in beside])
    assert all(r["contended"] == 0 and r["contention_share"] < 0.1 for r in alone)
    # the scheduler shares the core about evenly: the competitor takes close to half of it
    assert all(r["contended"] == 1 and 0.25 < r["contention_share"] <= 1.0 for r in beside)
    assert all(r["other_cpu_s"] > 0.2 * r["e2e_s"] and r["involuntary_switches"] > 0 for r in beside)
    assert "contended" in shared.stderr + mpibench(None, "show", str(tmp_path / "shared" / "results.h5")).stdout
