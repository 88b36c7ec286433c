"""The LLM judge: rating parsing, and the real SmolLM2 judge spread over a real `mpiexec -n 2`, on a real sweep's
answers; then the rubric, determinism and plots on the same file."""

import json
import math

import pytest

from helpers import mpibench
from mpibench.scoring.answers import answer_id
from mpibench.scoring.judge import JUDGE_TEMPLATE, judge_prompt, parse_rating
from mpibench.store.hdf5 import read_results


@pytest.mark.parametrize("text, expected", [
    ("The answer is accurate and clear. Rating: [[8]]", 8.0),
    ("Good. [[ 7.5 ]] overall", 7.5),
    ("[[10]] and again [[10]]", 10.0),
])
def test_a_single_rating_is_parsed(text, expected):
    assert parse_rating(text) == (expected, " ".join(text.split()))


@pytest.mark.parametrize("text, reason", [
    ("I would give it 8 out of 10.", "no [[rating]]"),
    ("Rating: [[rating]]", "no [[rating]]"),
    ("[[3]] or maybe [[9]]", "several ratings (3, 9)"),
    ("Rating: [[0]]", "rating 0 is outside 1-10"),
    ("Rating: [[11]]", "rating 11 is outside 1-10"),
    ("", "no [[rating]]"),
])
def test_an_unparsable_judgement_is_recorded_never_guessed(text, reason):
    score, rationale = parse_rating(text)
    assert math.isnan(score) and rationale.startswith(f"unparsable: {reason}")


def test_judge_prompt_is_mt_bench_single_answer_grading():
    prompt = judge_prompt("What is {x}?", "It is {y}.")
    assert prompt.startswith("[Instruction]\nPlease act as an impartial judge")
    assert "[Question]\nWhat is {x}?\n\n[The Start of Assistant's Answer]\nIt is {y}.\n[The End of" in prompt
    assert 'strictly following this format: "[[rating]]"' in JUDGE_TEMPLATE


@pytest.fixture(scope="module")
def judged(tmp_path_factory):
    """A real two-prompt SmolLM2 sweep, judged by SmolLM2 under mpiexec -n 2."""
    out = tmp_path_factory.mktemp("judged") / "run"
    sweep = mpibench(2, "run", "--models", "smollm2-135m", "--prompts", "pi,weather", "--threads", "1,2",
                     "--max-tokens", "16", "--out", str(out), "--no-plots")
    assert sweep.returncode == 0, sweep.stderr
    judge = mpibench(2, "score", str(out / "results.h5"), "--scorer", "judge", "--judge-model", "smollm2-135m",
                     "--judge-max-tokens", "24")
    assert judge.returncode == 0, judge.stderr
    assert "Traceback" not in judge.stderr
    return out, judge


@pytest.mark.integration
def test_judge_scores_every_answer_with_what_the_judge_said(judged):
    out, _ = judged
    results = read_results(out / "results.h5")
    judge_run = read_results(out / "judge-smollm2-135m" / "results.h5")
    said = {r["prompt_id"]: r["answer"] for r in judge_run.results}
    distinct = {answer_id(r["prompt_id"], r["answer"]) for r in results.results}
    assert set(said) == distinct and len(judge_run.results) == len(distinct)
    scores = {s["task_id"]: s for s in results.scores if s["scorer"] == "judge:smollm2-135m"}
    assert set(scores) == {r["task_id"] for r in results.results}
    for task in results.results:
        score = scores[task["task_id"]]
        expected = parse_rating(said[answer_id(task["prompt_id"], task["answer"])])
        assert score["rationale"] == expected[1]
        assert (math.isnan(score["score"]) and math.isnan(expected[0])) or score["score"] == expected[0]
        assert math.isnan(score["score"]) or 1 <= score["score"] <= 10


@pytest.mark.integration
def test_judging_is_a_sweep_over_the_mpi_workers_and_is_recorded(judged):
    out, _ = judged
    results = read_results(out / "results.h5")
    judge_run = read_results(out / "judge-smollm2-135m" / "results.h5")
    assert judge_run.attrs["world_size"] == 2 and {r["rank"] for r in judge_run.results} == {1}
    assert all(r["status"] == "ok" and 0 < r["generated_tokens"] <= 24 for r in judge_run.results)
    questions = {p["id"]: p["text"] for p in results.prompts}
    for task in results.results:
        prompt = next(p for p in judge_run.prompts if p["id"] == answer_id(task["prompt_id"], task["answer"]))
        assert prompt["text"] == judge_prompt(questions[task["prompt_id"]], task["answer"])
    (scorer,) = [s for s in results.scorers if s["scorer"] == "judge:smollm2-135m"]
    assert scorer["scorer_version"].startswith("mt-bench-single-v1 smollm2-135m Q4_1")
    details = json.loads(scorer["details_json"])
    assert details["model"]["name"] == "smollm2-135m" and details["model"]["path"].endswith(".gguf")
    assert details["prompt_template"] == JUDGE_TEMPLATE and details["max_tokens"] == 24
    assert details["judge_run"] == "judge-smollm2-135m" and details["world_size"] == 2


@pytest.mark.integration
def test_rubric_determinism_and_plots_on_the_real_sweep(judged):
    out, _ = judged
    rubric = mpibench(None, "score", str(out / "results.h5"), "--scorer", "rubric", timeout=120)
    assert rubric.returncode == 0, rubric.stderr
    results = read_results(out / "results.h5")
    assert {s["scorer"] for s in results.scores} == {"rubric", "judge:smollm2-135m"}
    assert all(1 <= s["score"] <= 10 for s in results.scores if s["scorer"] == "rubric")
    assert "rubric (rubric-v1" in rubric.stdout and "judge:smollm2-135m (mt-bench" in rubric.stdout
    assert (out / "plots" / "quality_vs_cost_rubric.png").stat().st_size > 10_000
    determinism = mpibench(None, "determinism", str(out / "results.h5"), timeout=120)
    assert determinism.returncode == 0, determinism.stderr
    for prompt in ("pi", "weather"):
        answers = {r["answer"] for r in results.results if r["prompt_id"] == prompt}
        row = next(line.split() for line in determinism.stdout.splitlines() if line.startswith(f"smollm2-135m  {prompt}"))
        assert row[2:5] == ["1,2", "2", "yes" if len(answers) == 1 else "no"]


@pytest.mark.integration
@pytest.mark.parametrize("args, message", [
    (["--judge-model", "/nonexistent/judge.gguf"], "does not exist"),
    (["--judge-model", "smollm2-135m", "--judge-threads", "64"], "exceed the cores"),
])
def test_bad_judge_input_stops_every_rank_and_keeps_the_scores(judged, args, message):
    out, _ = judged
    before = (out / "scores.jsonl").read_bytes()
    proc = mpibench(2, "score", str(out / "results.h5"), "--scorer", "judge", *args, timeout=120)
    assert proc.returncode == 2, proc.stderr
    assert message in proc.stderr and "Traceback" not in proc.stderr
    assert (out / "scores.jsonl").read_bytes() == before


@pytest.mark.integration
def test_judging_a_missing_results_file_is_a_clear_error(tmp_path):
    proc = mpibench(2, "score", str(tmp_path / "none.h5"), "--scorer", "judge", "--judge-model", "smollm2-135m",
                    timeout=120)
    assert proc.returncode == 2 and "no such file" in proc.stderr and "Traceback" not in proc.stderr
