"""Reading results from Python (mpibench.results.load) and one row per task (export --rows)."""

import csv
import io
import json
import math

import pandas
import pytest

from helpers import header
from mpibench.cli import main
from mpibench.results import load
from mpibench.store.hdf5 import read_results, write_results
from mpibench.store.schema import RESULT_COLUMNS, empty_result
from mpibench.store.scores import Score, ScoreBatch, answer_sha, replace_batch


def task(index, model, threads, repetition, answer, status="ok"):
    return empty_result(index=index, task_id=f"t{index}", model=model, prompt_id="pi", threads=threads,
                        repetition=repetition, warmup=int(repetition < 0), status=status, hostname="node-a",
                        e2e_s=1.0 + index, answer=answer, token_ns=[10 * index + 1, 10 * index + 2] if answer else [])


@pytest.fixture
def run_dir(tmp_path):
    """A run of two models with a warmup and a failed task, the first model's answers scored by the rubric."""
    records = [task(0, "m", 1, -1, "warm"), task(1, "m", 1, 0, "Pi is 3.14"), task(2, "m", 2, 0, "Pi ≈ 3.14\nok"),
               task(3, "other", 1, 0, "", status="failed")]
    path = tmp_path / "run" / "results.h5"
    path.parent.mkdir()
    write_results(path, header(len(records), run_id="20260101-000000-abcdef",
                               models=[dict(header()["models"][0], name=n) for n in ("m", "other")]), records)
    answers = {r["task_id"]: r["answer"] for r in records}
    scores = (Score("t1", answer_sha("Pi is 3.14"), 9.0, "says 3.14"), Score("t2", answer_sha("Pi ≈ 3.14\nok"), 7.0, "ok"))
    replace_batch(path, ScoreBatch("rubric", "1", "now", {}, scores), answers, [])
    return path.parent


def test_load_gives_one_row_per_task_with_str_columns_answers_token_times_and_scores(run_dir):
    df = load(run_dir)
    assert isinstance(df, pandas.DataFrame) and len(df) == 4
    assert list(df.columns[:2]) == ["run_id", "task_id"] and {c for c, _ in RESULT_COLUMNS} <= set(df.columns)
    mine = df[df.model == "m"]  # strings are str, not bytes: filtering works as a pandas user expects
    assert list(mine.threads) == [1, 1, 2] and set(df.run_id) == {"20260101-000000-abcdef"}
    assert all(isinstance(v, str) for v in df.hostname) and set(df.hostname) == {"node-a"}
    row = df[df.task_id == "t2"].iloc[0]
    assert row.answer == "Pi ≈ 3.14\nok" and list(row.token_ns) == [21, 22] and row["score:rubric"] == 7.0
    assert row["rationale:rubric"] == "ok"
    failed = df[df.status == "failed"].iloc[0]
    assert math.isnan(failed["score:rubric"]) and failed.answer == "" and list(failed.token_ns) == []
    assert df[df.warmup == 1].repetition.tolist() == [-1]
    assert load(run_dir / "results.h5").equals(df)


def test_export_rows_writes_one_csv_row_per_task_with_run_id_host_and_scores(run_dir, tmp_path, capsys):
    out = tmp_path / "tasks.csv"
    assert main(["export", str(run_dir), "--format", "csv", "--rows", "--out", str(out)]) == 0
    rows = list(csv.DictReader(io.StringIO(out.read_text())))
    assert [r["task_id"] for r in rows] == ["t0", "t1", "t2", "t3"]
    assert {r["run_id"] for r in rows} == {"20260101-000000-abcdef"} and {r["hostname"] for r in rows} == {"node-a"}
    assert [r["repetition"] for r in rows] == ["-1", "0", "0", "0"] and rows[2]["answer"] == "Pi ≈ 3.14\nok"
    assert [r["score:rubric"] for r in rows] == ["", "9.0", "7.0", ""] and "token_ns" not in rows[0]
    assert rows[3]["ttft_s"] == "" and rows[3]["status"] == "failed"  # NaN: an empty field


def test_export_rows_as_json_and_jsonl_keep_token_times(run_dir, capsys):
    assert main(["export", str(run_dir), "--format", "json", "--rows"]) == 0
    document = json.loads(capsys.readouterr().out)
    assert document["run_id"] == "20260101-000000-abcdef" and "score:<scorer>" in document["definitions"]
    assert [r["token_ns"] for r in document["rows"]][1:3] == [[11, 12], [21, 22]]
    assert document["rows"][3]["score:rubric"] is None
    assert main(["export", str(run_dir), "--format", "jsonl", "--rows"]) == 0
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert len(lines) == 4 and lines[2]["answer"] == "Pi ≈ 3.14\nok"
    assert len(read_results(run_dir).results) == 4
