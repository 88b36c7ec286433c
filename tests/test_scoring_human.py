"""Human grading: export a CSV, fill it in, import it back; every bad file is a one-line error that changes nothing."""

import csv

import pytest
from helpers import mpibench
from scoring_data import make_run

from mpibench.cli import main
from mpibench.store.hdf5 import read_results

ANSWERS = [("small", "pi", 1, "Pi is 3.14159."), ("small", "pi", 2, "Pi is 3.14159."),
           ("big", "pi", 1, "Pi is 3.2."), ("big", "story", 2, "Once, a girl and her dad\nbuilt a boat.")]


@pytest.fixture
def run(tmp_path):
    return make_run(tmp_path / "run", ANSWERS, failed=("big", "weather", 1))


def export(run, tmp_path, *flags) -> tuple[list[str], list[dict]]:
    out = tmp_path / "grades.csv"
    assert main(["score", str(run), "--scorer", "human", "--export", str(out), *flags]) == 0
    with out.open(newline="", encoding="utf-8") as f:
        reader = csv.DictReader(f)
        return list(reader.fieldnames), list(reader)


def write(path, columns, rows, delimiter=",", encoding="utf-8"):
    with path.open("w", newline="", encoding=encoding) as f:
        writer = csv.DictWriter(f, columns, delimiter=delimiter)
        writer.writeheader()
        writer.writerows(rows)
    return path


def graded(run, tmp_path, **scores) -> tuple[list[str], list[dict]]:
    """The blinded export with scores filled in: by prompt id, first row of each prompt gets scores[prompt]."""
    columns, rows = export(run, tmp_path, "--blind")
    for i, row in enumerate(rows):
        row["score"], row["comment"] = str(scores.get(row["prompt_id"], 5) + i % 2), f"row {i}"
    return columns, rows


def test_export_has_one_row_per_distinct_answer_with_model_and_threads(run, tmp_path):
    columns, rows = export(run, tmp_path)
    assert columns == ["answer_id", "prompt_id", "model", "threads", "question", "answer", "score", "comment"]
    assert len(rows) == 3  # the identical answers at 1 and 2 threads are one row; the failed task has none
    same = next(r for r in rows if r["answer"] == "Pi is 3.14159.")
    assert same["model"] == "small" and same["threads"] == "1;2" and same["score"] == ""
    assert next(r for r in rows if r["prompt_id"] == "story")["answer"] == "Once, a girl and her dad\nbuilt a boat."


def test_blinded_export_hides_model_and_threads(run, tmp_path):
    columns, rows = export(run, tmp_path, "--blind")
    assert "model" not in columns and "threads" not in columns
    assert [r["answer_id"] for r in rows] == sorted(r["answer_id"] for r in rows[:2]) + [rows[2]["answer_id"]]


def test_round_trip_scores_every_task_of_each_answer(run, tmp_path):
    columns, rows = graded(run, tmp_path, pi=8, story=3)
    write(tmp_path / "grades.csv", columns, rows)
    assert main(["score", str(run), "--scorer", "human", "--import", str(tmp_path / "grades.csv"),
                 "--grader", "alice", "--no-plots"]) == 0
    results = read_results(run)
    answer = {r["task_id"]: r["answer"] for r in results.results}
    expected = {r["answer"]: (float(r["score"]), r["comment"]) for r in rows}
    scores = [s for s in results.scores if s["scorer"] == "human:alice"]
    assert len(scores) == 4  # both tasks with the identical answer, not the failed task
    for s in scores:
        assert (s["score"], s["rationale"]) == expected[answer[s["task_id"]]]
    assert results.scorers[0]["scorer_version"].startswith("csv ")


def test_spreadsheet_csv_with_semicolons_and_bom_imports(run, tmp_path):
    columns, rows = graded(run, tmp_path)
    write(tmp_path / "excel.csv", columns, rows, delimiter=";", encoding="utf-8-sig")
    assert main(["score", str(run), "--scorer", "human", "--import", str(tmp_path / "excel.csv"), "--no-plots"]) == 0
    assert len(read_results(run).scores) == 4


def test_export_never_overwrites_a_file_unless_forced(run, tmp_path, capsys):
    export(run, tmp_path)
    (tmp_path / "grades.csv").write_text("my grades")
    assert main(["score", str(run), "--scorer", "human", "--export", str(tmp_path / "grades.csv")]) == 2
    assert "already exists" in capsys.readouterr().err and (tmp_path / "grades.csv").read_text() == "my grades"
    export(run, tmp_path, "--force")


def _bad(columns, rows):
    """Bad files: (name, columns, rows or raw bytes, expected message)."""
    ids = [r["answer_id"] for r in rows]
    return [
        ("range", columns, [dict(rows[0], score="11")] + rows[1:], "score '11' is outside 1-10"),
        ("zero", columns, [dict(rows[0], score="0")] + rows[1:], "score '0' is outside 1-10"),
        ("words", columns, [dict(rows[0], score="good")] + rows[1:], "score 'good' is not a number"),
        ("blank", columns, [dict(rows[0], score="")] + rows[1:], "no score; give every answer a score"),
        ("missing", columns, rows[:-1], f"1 answers of this results file have no row ({ids[-1]})"),
        ("unknown", columns, rows + [dict(rows[0], answer_id="feedfacecafe")], "feedfacecafe"),
        ("duplicate", columns, rows + [rows[1]], f"answer {ids[1]} is graded twice (rows 3 and 5)"),
        ("no id", columns, [dict(rows[0], answer_id="")] + rows[1:], "the answer_id cell is empty"),
        ("no score column", [c for c in columns if c != "score"], [{k: v for k, v in r.items() if k != "score"}
                                                                 for r in rows], "has no column score"),
        ("empty", None, b"", "is empty"),
        ("latin-1", None, "answer_id,score\nabc,7 é\n".encode("latin-1"), "is not UTF-8"),
    ]


def test_every_bad_file_is_a_one_line_error_and_changes_nothing(run, tmp_path, capsys):
    columns, rows = graded(run, tmp_path)
    write(tmp_path / "good.csv", columns, rows)
    assert main(["score", str(run), "--scorer", "human", "--import", str(tmp_path / "good.csv"), "--no-plots"]) == 0
    before = (run.read_bytes(), (run.parent / "scores.jsonl").read_bytes())
    capsys.readouterr()
    for name, cols, content, message in _bad(columns, rows):
        path = tmp_path / f"{name}.csv"
        if cols is None:
            path.write_bytes(content)
        else:
            write(path, cols, content)
        assert main(["score", str(run), "--scorer", "human", "--import", str(path), "--no-plots"]) == 2, name
        err = capsys.readouterr().err
        assert message in err and err.count("\n") == 1, (name, err)
        assert (run.read_bytes(), (run.parent / "scores.jsonl").read_bytes()) == before, name
    for missing in (tmp_path / "nope.csv", tmp_path):
        assert main(["score", str(run), "--scorer", "human", "--import", str(missing)]) == 2
        assert capsys.readouterr().err.startswith("mpibench: error: ")


def test_the_command_line_reports_a_bad_file_without_a_traceback(run, tmp_path):
    columns, rows = graded(run, tmp_path)
    write(tmp_path / "bad.csv", columns, [dict(rows[0], score="42")] + rows[1:])
    proc = mpibench(None, "score", str(run), "--scorer", "human", "--import", str(tmp_path / "bad.csv"), timeout=120)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert proc.stderr.strip().splitlines() == [f"mpibench: error: {tmp_path / 'bad.csv'}: row 2 (answer "
                                                f"{rows[0]['answer_id']}): score '42' is outside 1-10"]
