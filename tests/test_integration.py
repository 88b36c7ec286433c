"""Real sweeps: the real SmolLM2 model, real llama.cpp, under a real mpiexec with 1, 2 and 3 ranks."""

import pytest

from helpers import mpibench
from mpibench.affinity import parse_cpu_list
from mpibench.config import build_config
from mpibench.store.hdf5 import read_results
from mpibench.tasks import expand

pytestmark = pytest.mark.integration

SWEEP = ["--models", "smollm2-135m", "--prompts", "pi,weather", "--threads", "1,2", "--max-tokens", "12"]


@pytest.fixture(scope="module")
def sweeps(tmp_path_factory):
    """One real sweep per world size, run once for the module."""
    runs = {}
    for ranks in (1, 2, 3):
        out = tmp_path_factory.mktemp(f"n{ranks}") / "run"
        proc = mpibench(ranks, "run", *SWEEP, "--out", str(out), *(["--no-plots"] if ranks != 1 else []))
        assert proc.returncode == 0, proc.stderr
        runs[ranks] = (out, proc)
    return runs


# One node: rank 1 keeps the work and rank 2 stays a spare, so the node holds one model in memory at a time.
@pytest.mark.parametrize("ranks, worker_ranks", [(1, {0}), (2, {1}), (3, {1})])
def test_sweep_records_every_task_once_with_real_measurements(sweeps, ranks, worker_ranks):
    out, _ = sweeps[ranks]
    results = read_results(out / "results.h5")
    expected = expand(build_config("", {"prompts": "pi,weather", "threads": "1,2"}), (1, 2))
    rows = results.results
    assert sorted(r["task_id"] for r in rows) == sorted(t.id for t in expected)
    assert results.attrs["status"] == "complete" and results.attrs["world_size"] == ranks
    assert {r["rank"] for r in rows} == worker_ranks
    for row in rows:
        assert row["status"] == "ok", row["error"]
        assert row["answer"].strip()
        assert 0 < row["generated_tokens"] <= 12 and len(row["token_ns"]) == row["generated_tokens"]
        assert row["prompt_tokens"] > 5 and row["llama_prompt_n"] == row["prompt_tokens"]
        assert 0 < row["ttft_s"] < row["e2e_s"] < 60
        assert 0 < row["load_s"] < 60
        assert row["generated_tokens"] < 2 or 1 < row["decode_tok_s"] < 5000
        assert row["cpu_user_s"] > 0 and row["peak_rss_bytes"] > 50 * 2**20
        cores = parse_cpu_list(row["cores"])
        assert len(cores) == row["threads"]
        assert set(parse_cpu_list(row["cpus_seen"])) <= set(cores)
        assert row["prompt_format"] == "chat"
    assert results.models[0]["name"] == "smollm2-135m" and results.models[0]["quantization"] == "Q4_1"
    assert [p["id"] for p in results.prompts] == ["pi", "weather"]


def test_greedy_answers_match_across_world_sizes(sweeps):
    answers = [{(r["prompt_id"], r["threads"]): r["answer"] for r in read_results(sweeps[n][0] / "results.h5").results}
               for n in (1, 2, 3)]
    assert answers[0] == answers[1] == answers[2]


def test_plots_and_the_report_are_written_at_the_end_of_a_run(sweeps):
    out, proc = sweeps[1]
    pngs = sorted((out / "plots").glob("*.png"))  # one model: no plot against model size
    assert [p.name for p in pngs] == ["decode_roofline.png", "decode_vs_threads.png", "prefill_vs_threads.png",
                                      "runtime_vs_threads.png", "scaling_smollm2-135m.png", "speedup_efficiency.png",
                                      "ttft_vs_threads.png"]
    for png in pngs:
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 10_000
    assert "report.html" in proc.stderr and "smollm2-135m: on its 2 queries" in (out / "report.md").read_text()
    assert (out / "report.html").stat().st_size > 10_000


def test_show_prints_the_table(sweeps):
    out, _ = sweeps[2]
    proc = mpibench(None, "show", str(out / "results.h5"), timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert "smollm2-135m" in proc.stdout and "decode tok/s" in proc.stdout
    assert len([l for l in proc.stdout.splitlines() if l.startswith("smollm2-135m")]) == 4


@pytest.mark.parametrize("args, message", [
    (["--threads", "64"], "exceed the cores"),
    (["--models", "/nonexistent/model.gguf"], "does not exist"),
    (["--prompts", "nope"], "unknown key 'nope'"),
])
def test_bad_input_stops_every_rank_with_a_clear_message(tmp_path, args, message):
    proc = mpibench(3, "run", *args, "--out", str(tmp_path / "run"), timeout=120)
    assert proc.returncode == 2, proc.stderr
    assert message in proc.stderr and "Traceback" not in proc.stderr


def test_existing_run_is_not_overwritten(sweeps):
    out, _ = sweeps[2]
    before = (out / "results.h5").read_bytes()
    proc = mpibench(2, "run", *SWEEP, "--out", str(out), timeout=120)
    assert proc.returncode == 2 and "--force" in proc.stderr
    assert (out / "results.h5").read_bytes() == before


def test_a_model_without_chat_template_gets_a_completion_prompt(tmp_path):
    out = tmp_path / "run"
    # 128 tokens: the greedy answer reaches the next "Question:" after 38 tokens with the plain CPU kernels
    # and after 81 with CPU_REPACK (seen on an AMD EPYC Zen 4 with AVX-512, llama-cpp-python 0.3.36)
    proc = mpibench(1, "run", "--models", "gemma3-270m", "--prompts", "pi", "--threads", "1", "--max-tokens", "128",
                    "--out", str(out), "--no-plots")
    assert proc.returncode == 0, proc.stderr
    (row,) = read_results(out / "results.h5").results
    assert row["status"] == "ok" and row["prompt_format"] == "Question: {prompt}\nAnswer:"
    assert "3.14" in row["answer"] and "Question:" not in row["answer"]
    assert row["finish_reason"] == "stop"
