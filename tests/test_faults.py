"""No lost work: faults under a real mpiexec with the real SmolLM2 model (issue 5).

Each test breaks a real run (kill -9 of the whole job, a killed runner, SIGTERM, a torn journal, a task past
its time limit, a model that cannot load, a chat template that tries to run code, a worker that stops
answering) and checks what is left: every task exactly once, an HDF5 file that opens, a run that resumes.
"""

import json
import os
import signal
import subprocess
import time
from pathlib import Path

import gguf
import pytest

from helpers import mpi_env, mpibench, mpibench_command
from mpibench.config import build_config
from mpibench.models import builtin_path
from mpibench.store.hdf5 import read_results
from mpibench.tasks import expand

pytestmark = pytest.mark.integration

SWEEP = ["--models", "smollm2-135m", "--prompts", "pi,weather", "--threads", "1,2", "--max-tokens", "24",
         "--repetitions", "2", "--no-plots"]
EXPECTED = expand(build_config("", {"prompts": "pi,weather", "threads": "1,2", "repetitions": 2}), (1, 2))


def start(ranks: int, *args: str) -> subprocess.Popen:
    return subprocess.Popen(mpibench_command(ranks, "run", *args), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, env=mpi_env(), start_new_session=True)


def wait_for_lines(journal: Path, count: int, timeout: float = 120) -> None:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if journal.exists() and journal.read_text().count("\n") >= count:
            return
        time.sleep(0.05)
    pytest.fail(f"{journal} did not reach {count} lines")


def assert_complete(out: Path) -> list[dict]:
    results = read_results(out / "results.h5")
    ids = [r["task_id"] for r in results.results]
    assert sorted(ids) == sorted(t.id for t in EXPECTED), "every task exactly once"
    assert results.attrs["status"] == "complete"
    return results.results


def test_kill_9_of_the_whole_job_then_resume(tmp_path):
    out = tmp_path / "run"
    job = start(3, *SWEEP, "--out", str(out))
    wait_for_lines(out / "journal.jsonl", 3)
    os.killpg(job.pid, signal.SIGKILL)
    job.wait()
    rebuilt = mpibench(None, "rebuild", str(out), timeout=300)
    assert rebuilt.returncode == 0, rebuilt.stderr
    partial = read_results(out / "results.h5")
    assert partial.attrs["status"] == "interrupted" and 3 <= len(partial.results) < len(EXPECTED)
    proc = mpibench(3, "run", "--resume", str(out))
    assert proc.returncode == 0, proc.stderr
    assert "already done" in proc.stderr
    rows = assert_complete(out)
    assert all(r["status"] == "ok" and r["answer"] for r in rows)


def test_a_killed_runner_fails_its_task_only_and_retry_failed_reruns_it(tmp_path):
    out = tmp_path / "run"
    job = start(2, *SWEEP, "--max-tokens", "400", "--prompts", "story", "--threads", "1", "--out", str(out))
    wait_for_lines(out / "journal.jsonl", 1)
    worker = json.loads((out / "run.json").read_text())["workers"][1]["pid"]
    runner = subprocess.run(["pgrep", "-P", str(worker), "-f", "mpibench.runner"], capture_output=True, text=True)
    os.kill(int(runner.stdout.split()[0]), signal.SIGKILL)  # the runner of the second task, mid-generation
    _, stderr = job.communicate(timeout=300)
    assert job.returncode == 1, stderr
    rows = read_results(out / "results.h5").results
    assert [r["status"] for r in rows] == ["ok", "failed"]
    assert "runner killed by signal 9" in rows[1]["error"]
    proc = mpibench(2, "run", "--resume", str(out), "--retry-failed")
    assert proc.returncode == 0, proc.stderr
    rows = read_results(out / "results.h5").results
    assert [r["status"] for r in rows] == ["ok", "ok"]


def test_sigterm_flushes_and_leaves_a_resumable_run(tmp_path):
    out = tmp_path / "run"
    job = start(3, *SWEEP, "--out", str(out))
    wait_for_lines(out / "journal.jsonl", 2)
    workers = json.loads((out / "run.json").read_text())["workers"]
    for worker in workers:  # as Slurm does at its time limit: every task gets SIGTERM
        os.kill(worker["pid"], signal.SIGTERM)
    _, stderr = job.communicate(timeout=120)
    assert job.returncode == 128 + signal.SIGTERM, stderr
    assert f"Continue with: mpiexec -n 3 mpibench run --resume {out}\n" in stderr  # launched as it was
    partial = read_results(out / "results.h5")
    assert partial.attrs["status"] == "interrupted"
    assert json.loads((out / "run.json").read_text())["status"] == "interrupted"
    proc = mpibench(3, "run", "--resume", str(out))
    assert proc.returncode == 0, proc.stderr
    assert_complete(out)


def test_a_torn_journal_line_is_ignored_with_a_warning(tmp_path):
    out = tmp_path / "run"
    assert mpibench(1, "run", *SWEEP, "--repetitions", "1", "--out", str(out)).returncode == 0
    journal = out / "journal.jsonl"
    lines = journal.read_text().splitlines(keepends=True)
    journal.write_text("".join(lines[:-1]) + lines[-1][: len(lines[-1]) // 2])
    rebuilt = mpibench(None, "rebuild", str(out), timeout=300)
    assert rebuilt.returncode == 0 and "torn last line" in rebuilt.stderr
    assert rebuilt.stdout.endswith(f"{len(lines) - 1} of {len(lines)} tasks, rebuilt from the journal; "
                                   "status interrupted\n")  # not "complete": a task is missing
    torn = read_results(out / "results.h5")
    assert len(torn.results) == len(lines) - 1 and torn.attrs["status"] == "interrupted"
    proc = mpibench(2, "run", "--resume", str(out))
    assert proc.returncode == 0, proc.stderr
    assert len(read_results(out / "results.h5").results) == len(lines)


def test_resume_refuses_another_configuration_and_names_the_keys(tmp_path):
    out = tmp_path / "run"
    assert mpibench(1, "run", *SWEEP, "--repetitions", "1", "--out", str(out)).returncode == 0
    proc = mpibench(1, "run", *SWEEP, "--max-tokens", "8", "--resume", str(out))
    assert proc.returncode == 2
    assert "max_tokens" in proc.stderr and "repetitions" in proc.stderr and "Traceback" not in proc.stderr
    again = mpibench(1, "run", *SWEEP, "--out", str(out))
    assert again.returncode == 2 and "--resume" in again.stderr


def test_a_task_past_its_time_limit_is_killed_and_recorded(tmp_path):
    out = tmp_path / "run"
    proc = mpibench(2, "run", *SWEEP, "--prompts", "story", "--threads", "1", "--max-tokens", "400", "--timeout", "0.3",
                    "--out", str(out))
    assert proc.returncode == 1
    rows = read_results(out / "results.h5").results
    assert len(rows) == 2
    # the first task's limit covers the model load too: it fails to load in time or times out
    assert all(r["status"] in ("timeout", "failed") and "timed out after 0 s" in r["error"] for r in rows)


def test_a_model_that_cannot_load_fails_its_tasks_once(tmp_path):
    model = tmp_path / "cut.gguf"
    model.write_bytes(builtin_path("smollm2-135m").read_bytes()[: 40 * 2**20])  # header intact, weights cut
    out = tmp_path / "run"
    proc = mpibench(3, "run", "--models", f"{model},smollm2-135m", "--prompts", "pi,weather", "--threads", "1,2",
                    "--max-tokens", "8", "--no-plots", "--out", str(out))
    assert proc.returncode == 1
    rows = read_results(out / "results.h5").results
    cut = [r for r in rows if r["model"] == "cut"]
    assert len(cut) == 4 and all(r["status"] == "failed" for r in cut)
    assert sum(r["error"].startswith("model failed to load") for r in cut) == 1  # loaded once, not per task
    assert all("not run: model failed to load" in r["error"] for r in cut if r["rank"] == -1)
    # llama.cpp's own reason, from the runner's stderr, is stored with every task and counted at the end
    reason = "llama_model_load: error loading model: tensor 'blk.12.ffn_up.weight' data is not within the file bounds"
    assert all(reason in r["error"] for r in cut)
    assert f"mpibench:   1 task failed: model failed to load: llama.cpp could not load {model}: {reason}" in proc.stderr
    assert f"mpibench:   3 tasks failed: not run: model failed to load: llama.cpp could not load {model}: " \
           f"{reason}" in proc.stderr
    assert all(r["status"] == "ok" for r in rows if r["model"] == "smollm2-135m")


def with_chat_template(source: Path, target: Path, template: str) -> Path:
    reader = gguf.GGUFReader(source)
    writer = gguf.GGUFWriter(target, reader.fields["general.architecture"].contents())
    for field in reader.fields.values():
        if field.name.startswith(("GGUF.", "general.architecture", "tokenizer.chat_template")):
            continue
        kind = field.types[0]
        writer.add_key_value(field.name, field.contents(), kind,
                             sub_type=field.types[-1] if kind == gguf.GGUFValueType.ARRAY else None)
    writer.add_chat_template(template)
    for tensor in reader.tensors:
        writer.add_tensor_info(tensor.name, tensor.data.shape, tensor.data.dtype, tensor.data.nbytes, tensor.tensor_type)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_ti_data_to_file()
    for tensor in reader.tensors:
        writer.write_tensor_data(tensor.data)
    writer.close()
    return target


def test_a_chat_template_that_tries_to_run_code_does_not_run_it(tmp_path):
    marker = tmp_path / "pwned"
    template = ("{{ cycler.__init__.__globals__.os.system('touch " + str(marker) + "') }}"
                "{% for m in messages %}{{ m['content'] }}{% endfor %}")
    model = with_chat_template(builtin_path("smollm2-135m"), tmp_path / "evil.gguf", template)
    out = tmp_path / "run"
    proc = mpibench(1, "run", "--models", str(model), "--prompts", "pi", "--threads", "1", "--max-tokens", "8",
                    "--no-plots", "--out", str(out))
    assert not marker.exists()
    assert proc.returncode == 1
    (row,) = read_results(out / "results.h5").results
    assert row["status"] == "failed" and "SecurityError" in row["error"]


def test_a_worker_that_stops_answering_is_given_up_and_the_rest_finish(tmp_path):
    out = tmp_path / "run"
    job = start(3, *SWEEP, "--timeout", "10", "--out", str(out))
    wait_for_lines(out / "journal.jsonl", 1)
    rank1 = json.loads((out / "run.json").read_text())["workers"][1]["pid"]
    os.kill(rank1, signal.SIGSTOP)
    try:
        _, stderr = job.communicate(timeout=240)
    finally:
        os.killpg(job.pid, signal.SIGKILL) if job.poll() is None else None
    assert job.returncode != 0
    assert "worker ranks 1 stopped answering" in stderr
    rows = read_results(out / "results.h5").results
    assert sorted(r["task_id"] for r in rows) == sorted(t.id for t in EXPECTED)
    lost = [r for r in rows if r["status"] != "ok"]
    assert len(lost) <= 1 and all("stopped answering" in r["error"] for r in lost), [r["error"] for r in lost]
    assert {r["rank"] for r in rows if r["status"] == "ok"} >= {2}


@pytest.mark.parametrize("args, message", [
    (["--out", "/proc/mpibench-run"], "cannot write to output directory"),
    (["--threads", "0"], "positive integer"),
    (["--threads", "-2"], "not a number"),
    (["--models", str(Path(__file__))], "not a GGUF model file"),
    (["--resume", "/nonexistent-run"], "not an mpibench run directory"),
])
def test_more_bad_input_is_refused_cleanly(args, message):
    proc = mpibench(2, "run", *args, timeout=120)
    assert proc.returncode == 2, proc.stderr
    assert message in proc.stderr and "Traceback" not in proc.stderr


def test_a_results_file_of_a_newer_schema_is_refused(tmp_path):
    import h5py

    out = tmp_path / "run"
    assert mpibench(1, "run", *SWEEP, "--repetitions", "1", "--out", str(out)).returncode == 0
    with h5py.File(out / "results.h5", "a") as f:
        f.attrs["schema_version"] = 99
    proc = mpibench(None, "show", str(out / "results.h5"), timeout=300)
    assert proc.returncode == 2 and "newer than this mpibench reads" in proc.stderr
