"""Rank 0's progress: a live line on a terminal; status lines at an interval and at each model change
elsewhere (mpiexec's pipe, a Slurm log), under a real mpiexec too; nothing with --quiet."""

import dataclasses
import io
import math
import subprocess

import pytest

from helpers import mpibench_command, mpi_env
from mpibench.progress import Progress, format_eta
from mpibench.protocol import Result
from mpibench.tasks import Task

TASK = Task(id="t", index=0, model="m", prompt_id="pi", threads=2, repetition=0)


class Tty(io.StringIO):
    def isatty(self):
        return True


def test_progress_on_a_terminal_is_one_live_line_with_the_cell_running():
    times = iter([0.0, 0.0, 30.0, 30.0])
    tty = Tty()
    progress = Progress(10, tty, clock=lambda: next(times))
    progress.running(TASK)
    progress.update(3, failed=1, result=Result(decode_tok_s=41.25))
    last = tty.getvalue().split("\r\033[K")[-1]
    assert last == "[mpibench] 3/10 tasks, 1 failed, elapsed 0m30s, ETA 1m10s, running m pi t=2, last decode 41.2 tok/s"
    assert "\n" not in tty.getvalue()
    assert format_eta(7300) == "2h01m"


def test_progress_off_a_terminal_prints_status_lines_at_its_interval_and_each_model_change():
    now = [0.0]
    log = io.StringIO()  # what mpiexec gives rank 0, or a Slurm log
    progress = Progress(4, log, clock=lambda: now[0], interval=30.0)
    progress.running(TASK)  # the first model: a line
    now[0] = 10.0
    progress.update(1, result=Result(prefill_tok_s=500.0))
    progress.running(TASK)  # same model, within the interval: nothing
    now[0] = 31.0
    progress.tick()  # due
    progress.running(dataclasses.replace(TASK, model="n"))  # another model
    now[0] = 40.0
    progress.update(4)
    progress.finish()
    lines = log.getvalue().splitlines()
    assert lines == [
        "[mpibench] 0/4 tasks, elapsed 0m00s, ETA ?, running m pi t=2",
        "[mpibench] 1/4 tasks, elapsed 0m31s, ETA 1m33s, running m pi t=2, last prefill 500.0 tok/s",
        "[mpibench] 1/4 tasks, elapsed 0m31s, ETA 1m33s, running n pi t=2, last prefill 500.0 tok/s",
        "[mpibench] 4/4 tasks, elapsed 0m40s, ETA 0m00s, last prefill 500.0 tok/s",
    ]
    assert log.getvalue().endswith("\n") and progress.next_line_at == 70.0


def test_quiet_progress_prints_nothing_anywhere():
    for stream in (io.StringIO(), Tty()):
        progress = Progress(2, stream, interval=0.001, quiet=True)
        progress.running(TASK)
        progress.update(2, result=Result(decode_tok_s=1.0))
        progress.finish()
        assert stream.getvalue() == "" and progress.next_line_at == math.inf


@pytest.mark.integration
def test_a_run_under_mpiexec_leaves_status_lines_in_its_log_while_it_runs(tmp_path):
    command = mpibench_command(2, "run", "--models", "smollm2-135m", "--prompts", "pi,weather", "--threads", "1",
                               "--repetitions", "2", "--max-tokens", "32", "--no-plots", "--status-interval", "0.5",
                               "--out", str(tmp_path / "run"))
    process = subprocess.Popen(command, stderr=subprocess.PIPE, text=True, env=mpi_env())
    seen = []  # (status line, whether the run was still going when it arrived)
    for line in process.stderr:
        if line.startswith("[mpibench]"):
            seen.append((line, process.poll() is None))
    assert process.wait(timeout=600) == 0
    assert len(seen) >= 3 and all(line.endswith("\n") for line, _ in seen)
    assert seen[0][0].startswith("[mpibench] 0/") and "running smollm2-135m" in seen[0][0] and seen[0][1]
    assert any(" t=1" in line and "last decode" in line and going for line, going in seen[1:])
    assert seen[-1][0].startswith("[mpibench] 4/4 tasks")
