"""Scorer agreement, determinism across thread counts, the Pareto front and the quality plots (pure logic and files)."""

import math

import pytest
from scoring_data import make_run

from analysis.quality import draw_quality, pareto_front
from mpibench.cli import main
from mpibench.scoring.agreement import pairwise, ranks, spearman
from mpibench.scoring.determinism import check, first_difference
from mpibench.store.hdf5 import ResultsFileError


def test_ranks_average_ties():
    assert ranks([10, 20, 20, 5]) == [2, 3.5, 3.5, 1]


def test_spearman_matches_known_values():
    assert spearman([1, 2, 3, 4], [10, 20, 30, 40]) == pytest.approx(1)
    assert spearman([1, 2, 3, 4], [4, 3, 2, 1]) == pytest.approx(-1)
    # scipy.stats.spearmanr([1, 2, 3, 4, 5], [2, 1, 4, 3, 5]).statistic == 0.8
    assert spearman([1, 2, 3, 4, 5], [2, 1, 4, 3, 5]) == pytest.approx(0.8)
    # with ties: scipy.stats.spearmanr([1, 2, 2, 3], [1, 3, 2, 4]).statistic == 0.9486832980505138
    assert spearman([1, 2, 2, 3], [1, 3, 2, 4]) == pytest.approx(0.9486832980505138)
    assert math.isnan(spearman([1], [2])) and math.isnan(spearman([3, 3, 3], [1, 2, 3]))


def test_pairwise_agreement_counts_each_distinct_answer_once():
    answer_of_task = {"t1": "a", "t2": "a", "t3": "b", "t4": "c"}
    scores = [
        {"task_id": "t1", "scorer": "rubric", "score": 9.0}, {"task_id": "t2", "scorer": "rubric", "score": 9.0},
        {"task_id": "t3", "scorer": "rubric", "score": 2.0}, {"task_id": "t4", "scorer": "rubric", "score": 5.0},
        {"task_id": "t1", "scorer": "human", "score": 7.0}, {"task_id": "t2", "scorer": "human", "score": 7.0},
        {"task_id": "t3", "scorer": "human", "score": 3.0}, {"task_id": "t4", "scorer": "human", "score": math.nan},
    ]
    (agreement,) = pairwise(scores, answer_of_task)
    assert (agreement.a, agreement.b, agreement.n) == ("human", "rubric", 2)  # t4 unusable, t2 = t1's answer
    assert agreement.spearman == pytest.approx(1) and agreement.mean_abs_diff == pytest.approx(1.5)


def test_first_difference():
    assert first_difference("abc", "abc") is None
    assert first_difference("abcd", "abXd") == 2
    assert first_difference("abc", "abcdef") == 3


def test_determinism_finds_where_answers_diverge(tmp_path):
    records = [
        {"model": "m", "prompt_id": "p", "threads": 1, "repetition": 0, "status": "ok", "answer": "same text"},
        {"model": "m", "prompt_id": "p", "threads": 2, "repetition": 0, "status": "ok", "answer": "same text"},
        {"model": "m", "prompt_id": "q", "threads": 1, "repetition": 0, "status": "ok", "answer": "one\ntwo three"},
        {"model": "m", "prompt_id": "q", "threads": 4, "repetition": 0, "status": "ok", "answer": "one\ntwo four"},
        {"model": "m", "prompt_id": "q", "threads": 2, "repetition": 0, "status": "failed", "answer": ""},
    ]
    same, diverged = check(records)
    assert same.identical and same.threads == (1, 2)
    assert not diverged.identical and diverged.threads == (1, 4) and diverged.answers == 2
    (d,) = diverged.divergences
    assert (d.threads, d.offset, d.line, d.column, d.reference, d.other) == (4, 8, 2, 5, "three", "four")


def test_determinism_command(tmp_path, capsys):
    path = make_run(tmp_path / "run", [("small", "pi", 1, "Pi is 3.14."), ("small", "pi", 2, "Pi is 3.14."),
                                       ("big", "pi", 1, "Pi is 3.14."), ("big", "pi", 2, "Pi is 3.15.")])
    assert main(["determinism", str(path)]) == 1  # answers differ: a CI job fails on it
    lines = [" ".join(line.split()) for line in capsys.readouterr().out.splitlines()]
    assert "big pi 1,2 2 no t=2 rep 0 vs t=1 rep 0 at char 9 (line 1, col 10): '4.' vs '5.'" in lines
    assert "small pi 1,2 2 yes -" in lines and lines[-1].startswith("1/2 (model, prompt) cells")
    before = path.read_bytes()
    same = make_run(tmp_path / "same", [("small", "pi", 1, "Pi is 3.14."), ("small", "pi", 2, "Pi is 3.14.")])
    assert main(["determinism", str(same.parent)]) == 0  # a run directory does as well as its results.h5
    assert path.read_bytes() == before


def test_pareto_front_keeps_the_configurations_nothing_beats():
    points = [(1.0, 5.0), (2.0, 5.0), (2.0, 8.0), (4.0, 7.0), (8.0, 9.0), (0.5, 2.0)]
    assert pareto_front(points) == [5, 0, 2, 4]
    assert pareto_front([(1.0, 5.0), (1.0, 5.0)]) == [0, 1]


def test_quality_plots_are_written_for_every_scorer(tmp_path):
    answers = [(m, p, t, f"{m} {p} {t} Pi is 3.14159, a circle's ratio.") for m in ("small", "big")
               for p in ("pi", "weather") for t in (1, 2)]
    path = make_run(tmp_path / "run", answers)
    with pytest.raises(ResultsFileError, match="no usable scores"):
        draw_quality(path, tmp_path / "plots")
    assert main(["score", str(path), "--scorer", "rubric"]) == 0  # draws them into plots/ beside the results
    names = sorted(p.name for p in (tmp_path / "run" / "plots").glob("*.png"))
    assert names == ["quality_vs_cost_rubric.png", "score_vs_model_size_rubric.png", "score_vs_threads_rubric.png"]
    for png in (tmp_path / "run" / "plots").glob("*.png"):
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 10_000
