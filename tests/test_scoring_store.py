"""Scores on disk: scores.jsonl is the source of truth, results.h5 carries a copy that survives every rewrite."""

import json
import math
import re

import h5py
import pytest
from scoring_data import header, make_run

from mpibench.cli import main
from mpibench.store.hdf5 import read_results, write_results
from mpibench.store.scores import Score, ScoreBatch, answer_sha, read_batches, replace_batch

ANSWERS = [("small", "pi", 1, "Pi is about 3.14159, the ratio of a circle's circumference to its diameter."),
           ("small", "pi", 2, "Pi is about 3.14159, the ratio of a circle's circumference to its diameter."),
           ("big", "weather", 1, "Today is sunny and 20 degrees.")]


def by_scorer(path) -> dict[str, dict[str, float]]:
    result: dict[str, dict[str, float]] = {}
    for row in read_results(path).scores:
        result.setdefault(row["scorer"], {})[row["task_id"]] = row["score"]
    return result


def rewrite(path, answers=ANSWERS):
    """What the sweep (every 30 s and at the end) and a rebuild do: write results.h5 again from the records."""
    old = read_results(path).results
    records = [dict(r, answer=a[3]) for r, a in zip(old, answers)]
    write_results(path, header(len(records)), records)


def human_batch(path, score=7.0) -> ScoreBatch:
    rows = tuple(Score(r["task_id"], answer_sha(r["answer"]), score, "ok") for r in read_results(path).results)
    return ScoreBatch("human", "csv x", "now", {"csv": "g.csv"}, rows)


def test_scores_survive_a_rewrite_of_the_results_file(tmp_path):
    path = make_run(tmp_path / "run", ANSWERS)
    assert main(["score", str(path), "--scorer", "rubric", "--no-plots"]) == 0
    scores = by_scorer(path)["rubric"]
    assert len(scores) == 3 and scores[read_results(path).results[2]["task_id"]] <= 3
    rewrite(path)
    assert by_scorer(path)["rubric"] == scores
    with h5py.File(path) as f:  # plain h5py sees the tables and their definitions
        assert "1 (worst) to 10 (best)" in f["scores"].attrs["score"]
        details = json.loads(f["scorers"][0]["details_json"])
        assert details["rubrics"]["pi"]["source"] == "study"


def test_scoring_again_replaces_that_scorer_and_keeps_the_others(tmp_path):
    path = make_run(tmp_path / "run", ANSWERS)
    main(["score", str(path), "--scorer", "rubric", "--no-plots"])
    answers = {r["task_id"]: r["answer"] for r in read_results(path).results}
    replace_batch(path, human_batch(path, 7.0), answers, [])
    replace_batch(path, human_batch(path, 4.0), answers, [])
    main(["score", str(path), "--scorer", "rubric", "--no-plots"])
    scores = by_scorer(path)
    assert set(scores) == {"rubric", "human"} and set(scores["human"].values()) == {4.0}
    assert [b.scorer for b in read_batches(tmp_path / "run")] == ["human", "rubric"]
    assert len(read_results(path).scorers) == 2


def test_a_score_is_dropped_when_its_task_gets_another_answer(tmp_path):
    path = make_run(tmp_path / "run", ANSWERS)
    main(["score", str(path), "--scorer", "rubric", "--no-plots"])
    changed = ANSWERS[:2] + [("big", "weather", 1, "I cannot know today's weather; check a weather app.")]
    rewrite(path, changed)
    scores = by_scorer(path)["rubric"]
    assert len(scores) == 2 and read_results(path).results[2]["task_id"] not in scores
    assert len(read_batches(tmp_path / "run")[0].scores) == 3  # the source of truth keeps what was scored


def test_unparsable_scores_are_kept_as_nan(tmp_path):
    path = make_run(tmp_path / "run", ANSWERS)
    results = read_results(path).results
    batch = ScoreBatch("judge:m", "v", "now", {}, tuple(
        Score(r["task_id"], answer_sha(r["answer"]), math.nan, "unparsable: no [[rating]]") for r in results))
    replace_batch(path, batch, {r["task_id"]: r["answer"] for r in results}, [])
    assert "null" in (tmp_path / "run" / "scores.jsonl").read_text()
    rewrite(path)
    rows = read_results(path).scores
    assert len(rows) == 3 and all(math.isnan(r["score"]) and r["rationale"].startswith("unparsable") for r in rows)


def test_files_without_score_tables_read_and_score(tmp_path):
    path = make_run(tmp_path / "run", ANSWERS)
    with h5py.File(path, "a") as f:  # a file written before scores existed
        del f["scores"], f["scorers"]
    assert read_results(path).scores == [] and read_results(path).scorers == []
    assert main(["score", str(path), "--scorer", "rubric", "--no-plots"]) == 0
    assert len(by_scorer(path)["rubric"]) == 3


def test_a_results_file_moved_without_its_scores_jsonl_keeps_its_scores(tmp_path):
    path = make_run(tmp_path / "run", ANSWERS)
    answers = {r["task_id"]: r["answer"] for r in read_results(path).results}
    replace_batch(path, human_batch(path), answers, [])
    moved = tmp_path / "elsewhere"
    moved.mkdir()
    (moved / "results.h5").write_bytes(path.read_bytes())
    assert main(["score", str(moved / "results.h5"), "--scorer", "rubric", "--no-plots"]) == 0
    assert set(by_scorer(moved / "results.h5")) == {"human", "rubric"}
    assert {b.scorer for b in read_batches(moved)} == {"human", "rubric"}


def test_a_damaged_scores_jsonl_never_stops_a_rewrite_and_is_never_overwritten(tmp_path, capsys):
    path = make_run(tmp_path / "run", ANSWERS)
    (tmp_path / "run" / "scores.jsonl").write_text("{not json\n")
    rewrite(path)
    assert "written without scores" in capsys.readouterr().err and read_results(path).scores == []
    assert main(["score", str(path), "--scorer", "rubric", "--no-plots"]) == 2
    err = capsys.readouterr().err
    assert "scores.jsonl is damaged" in err and err.count("\n") == 1
    assert (tmp_path / "run" / "scores.jsonl").read_text() == "{not json\n"


def test_score_without_a_scorer_prints_the_tables_and_agreement(tmp_path, capsys):
    path = make_run(tmp_path / "run", ANSWERS)
    assert main(["score", str(path)]) == 0
    assert "no scores yet" in capsys.readouterr().out
    main(["score", str(path), "--scorer", "rubric", "--no-plots"])
    answers = {r["task_id"]: r["answer"] for r in read_results(path).results}
    replace_batch(path, human_batch(path), answers, [])
    capsys.readouterr()
    assert main(["score", str(path)]) == 0
    out = capsys.readouterr().out
    assert "rubric (rubric-v1" in out and "human (csv x" in out
    agreement = out.split("agreement between scorers")[1]
    assert re.search(r"\nhuman\s+rubric\s+2\s+-\s+\d", agreement)  # 2 distinct answers; constant human scores


@pytest.mark.parametrize("args, message", [
    (["--scorer", "rubric", "--judge-model", "m"], "--judge-model applies to --scorer judge"),
    (["--scorer", "judge"], "needs --judge-model"),
    (["--scorer", "judge", "--judge-model", "m", "--judge-threads", "0"], "--judge-threads must be a positive"),
    (["--scorer", "human", "--export", "a.csv", "--import", "b.csv"], "either --export CSV"),
    (["--scorer", "human", "--import", "b.csv", "--blind"], "--blind goes with --export"),
    (["--scorer", "human", "--import", "b.csv", "--grader", "a b"], "--grader must be a plain name"),
    (["--rubrics", "r.toml"], "--rubrics applies to --scorer rubric"),
    (["--scorer", "rubric", "--judge-threads", "0"], "--judge-threads applies to --scorer judge"),
])
def test_bad_options_are_one_line_errors(tmp_path, capsys, args, message):
    path = make_run(tmp_path / "run", ANSWERS)
    assert main(["score", str(path), *args]) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1
