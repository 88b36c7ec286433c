"""The rough edges a new user hit (issue 15), each run as a command against a real run of the real SmolLM2
model under a real mpiexec: the message, the exit code, and that nothing already written was lost."""

import json
import shutil
import subprocess

import pytest

from helpers import mpi_env, mpibench, mpibench_command
from mpibench.store.hdf5 import read_results

pytestmark = pytest.mark.integration

SWEEP = ["-m", "smollm2-135m", "--prompts", "pi,weather", "-t", "1,2", "-n", "8", "--no-plots"]


@pytest.fixture(scope="module")
def done(tmp_path_factory):
    """One real run, printing its table as JSON lines at the end; tests that change it work on a copy."""
    out = tmp_path_factory.mktemp("edges") / "run"
    proc = mpibench(2, "run", *SWEEP, "-o", "jsonl", "--out", str(out))
    assert proc.returncode == 0, proc.stderr
    return out, proc


def files(run_dir):
    return {p.name: p.read_bytes() for p in run_dir.iterdir() if p.is_file()}


@pytest.fixture
def copy(done, tmp_path):
    return shutil.copytree(done[0], tmp_path / "run")


def test_the_end_of_a_run_prints_its_cells_in_the_output_format(done):
    out, proc = done
    cells = [json.loads(line) for line in proc.stdout.splitlines()]
    assert [(c["prompt_id"], c["threads"]) for c in cells] == [("pi", 1), ("pi", 2), ("weather", 1), ("weather", 2)]
    assert all(c["runs"] == 1 and c["e2e_s_median"] > 0 for c in cells)


def test_show_takes_a_run_directory(done, tmp_path):
    out, _ = done
    by_dir, by_file = mpibench(None, "show", str(out)), mpibench(None, "show", str(out / "results.h5"))
    assert by_dir.returncode == 0 and by_dir.stdout == by_file.stdout and "smollm2-135m" in by_dir.stdout
    empty = mpibench(None, "show", str(tmp_path))
    assert empty.returncode == 2 and empty.stderr == f"mpibench: error: {tmp_path} is a directory without results.h5\n"


def test_show_into_a_closed_pipe_stops_quietly(done):
    out, _ = done
    before = files(out)
    proc = subprocess.Popen(mpibench_command(None, "show", str(out)), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            env=mpi_env())
    proc.stdout.close()  # as `| head -1` does once it has its line
    _, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 141 and stderr == b""  # as a writer killed by SIGPIPE, no traceback
    assert files(out) == before


def test_plot_into_an_unwritable_folder_is_one_line(done):
    out, _ = done
    before = files(out)
    proc = mpibench(None, "plot", str(out), "--out", "/proc/x")
    assert proc.returncode == 2
    assert proc.stderr == "error: cannot write the plots to /proc/x: No such file or directory\n"
    assert files(out) == before and not (out / "plots").exists()


def test_a_truncated_results_file_suggests_rebuild_and_rebuild_brings_it_back(copy):
    results = copy / "results.h5"
    whole = [(r["task_id"], r["answer"], r["e2e_s"], r["token_ns"]) for r in read_results(results).results]
    journal = (copy / "journal.jsonl").read_bytes()
    results.write_bytes(results.read_bytes()[: results.stat().st_size // 2])
    proc = mpibench(None, "show", str(copy))
    assert proc.returncode == 2 and len(proc.stderr.splitlines()) == 1 and "Traceback" not in proc.stderr
    assert proc.stderr.endswith(f"; write it again from the run's journal: mpibench rebuild {copy}\n")
    rebuilt = mpibench(None, "rebuild", str(copy))
    assert rebuilt.returncode == 0 and rebuilt.stdout.endswith("4 of 4 tasks, rebuilt from the journal; status complete\n")
    assert [(r["task_id"], r["answer"], r["e2e_s"], r["token_ns"]) for r in read_results(results).results] == whole
    assert (copy / "journal.jsonl").read_bytes() == journal


def test_resume_keeps_the_runs_own_values_for_flags_not_given(copy):
    journal = (copy / "journal.jsonl").read_bytes()
    proc = mpibench(2, "run", "--resume", str(copy), "--timeout", "100", "-o", "csv")
    assert proc.returncode == 0, proc.stderr
    assert "0 tasks, 4 already done" in proc.stderr and (copy / "journal.jsonl").read_bytes() == journal
    assert json.loads((copy / "run.json").read_text())["config_json"]
    refused = mpibench(2, "run", "--resume", str(copy), "-n", "4")
    assert refused.returncode == 2 and "(max_tokens differ)" in refused.stderr
    assert (copy / "journal.jsonl").read_bytes() == journal


def test_a_run_ends_with_its_failure_reasons_counted(tmp_path):
    out = tmp_path / "run"
    proc = mpibench(1, "run", *SWEEP, "-t", "1", "--ctx", "8", "--out", str(out))
    assert proc.returncode == 1
    lines = proc.stderr.splitlines()
    (at,) = [i for i, line in enumerate(lines) if line.startswith("mpibench: 0 tasks ok, 2 failed or not run;")]
    assert lines[at + 1].startswith("mpibench:   2 tasks failed: ValueError: the prompt has ")
    assert lines[at + 1].endswith("tokens; it does not fit n_ctx=8")
    assert [r["status"] for r in read_results(out).results] == ["failed", "failed"]


def test_a_factor_below_2_in_a_thread_range_is_refused(tmp_path):
    proc = mpibench(2, "run", "--threads", "1-2*0", "--out", str(tmp_path / "run"), timeout=120)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert "threads: the factor of '1-2*0' must be 2 or more" in proc.stderr
    assert not (tmp_path / "run").exists()
