import math

import h5py
import pytest

from helpers import header
from mpibench.store.hdf5 import ResultsFileError, read_results, write_results
from mpibench.store.journal import Journal, read_journal
from mpibench.store.schema import empty_result
from mpibench.summary import cells


def record(index, **kw):
    return empty_result(index=index, task_id=f"t{index}", model="m", prompt_id="pi", threads=1, status="ok",
                        answer=f"answer {index} π", token_ns=[1, 2, 3][: index + 1], **kw)


def test_journal_survives_a_torn_last_line(tmp_path, capsys):
    journal = Journal(tmp_path / "j.jsonl")
    journal.append({"a": 1})
    journal.append({"a": 2})
    journal.close()
    with open(tmp_path / "j.jsonl", "a") as f:
        f.write('{"a": 3, "b"')
    assert read_journal(tmp_path / "j.jsonl") == [{"a": 1}, {"a": 2}]
    assert "torn last line" in capsys.readouterr().err


def test_hdf5_round_trip_keeps_rows_answers_and_token_times(tmp_path):
    path = tmp_path / "results.h5"
    write_results(path, header(), [record(1, e2e_s=2.5), record(0)])
    results = read_results(path)
    assert [r["index"] for r in results.results] == [0, 1]
    assert results.results[1]["answer"] == "answer 1 π" and results.results[1]["token_ns"] == [1, 2]
    assert results.results[1]["e2e_s"] == 2.5 and math.isnan(results.results[0]["e2e_s"])
    assert results.models[0]["quantization"] == "Q4_1" and results.attrs["world_size"] == 3
    assert not (tmp_path / "results.h5.tmp").exists()
    with h5py.File(path) as f:  # plain h5py sees a table with definitions
        assert "time to first token" in f["results"].attrs["ttft_s"]


def test_reader_refuses_newer_schema_and_non_results_files(tmp_path):
    path = tmp_path / "results.h5"
    write_results(path, header(), [record(0)])
    with h5py.File(path, "a") as f:
        f.attrs["schema_version"] = 99
    with pytest.raises(ResultsFileError, match="newer"):
        read_results(path)
    (tmp_path / "x.h5").write_text("no")
    with pytest.raises(ResultsFileError, match="not a readable HDF5"):
        read_results(tmp_path / "x.h5")
    with pytest.raises(ResultsFileError, match="no such file"):
        read_results(tmp_path / "missing.h5")


def test_rows_of_a_file_without_kind_and_warmup_columns_read_as_measured_queries(tmp_path):
    path = tmp_path / "results.h5"
    write_results(path, header(), [record(0, e2e_s=1.0), record(1, e2e_s=2.0)])
    with h5py.File(path, "a") as f:  # as an mpibench from before the columns wrote it
        old = f["results"][()]
        kept = [n for n in old.dtype.names if n not in ("kind", "warmup")]
        del f["results"]
        f.create_dataset("results", data=old[kept])
    rows = read_results(path).results
    assert [(r["kind"], r["warmup"]) for r in rows] == [("query", 0), ("query", 0)]
    (cell,) = cells(rows)
    assert (cell.kind, cell.runs, cell.warmups, cell.medians["e2e_s"]) == ("query", 2, 0, 1.5)
