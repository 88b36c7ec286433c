"""mpibench export (csv, json, llama-bench's csv) and show, on results files written here, old and new."""

import csv
import io
import json
import math
import sqlite3

import h5py
import numpy as np
import pytest

from helpers import header
from mpibench.cli import main
from mpibench.export import LLAMA_BENCH_FIELDS, to_llama_bench_csv
from mpibench.store.hdf5 import read_results, write_results
from mpibench.store.schema import empty_result

# llama-bench -o csv's header line (llama.cpp vendored in llama-cpp-python 0.3.36)
LLAMA_BENCH_HEADER = (
    "build_commit,build_number,cpu_info,gpu_info,backends,model_filename,model_type,model_size,model_n_params,"
    "n_batch,n_ubatch,n_threads,cpu_mask,cpu_strict,poll,type_k,type_v,n_gpu_layers,n_cpu_moe,split_mode,main_gpu,"
    "no_kv_offload,flash_attn,devices,tensor_split,tensor_buft_overrides,load_mode,lazy_mode,embeddings,"
    "no_op_offload,no_host,repack,fit_target,fit_min_ctx,n_prompt,n_gen,n_depth,test_time,avg_ns,stddev_ns,"
    "avg_ts,stddev_ts")


def bench(index, test, threads, e2e, repetition, status="ok"):
    n = int(test[2:])
    rate = "prefill_tok_s" if test.startswith("pp") else "decode_tok_s"
    return empty_result(index=index, task_id=f"t{index}", kind="bench", model="m", prompt_id=test, threads=threads,
                        repetition=repetition, warmup=int(repetition < 0), status=status, hostname="h",
                        e2e_s=e2e, started_unix=1_700_000_000.0 + index, answer="", token_ns=[], **{rate: n / e2e})


def query(index, threads, e2e, repetition):
    return empty_result(index=index, task_id=f"q{index}", kind="query", model="m", prompt_id="pi", threads=threads,
                        repetition=repetition, status="ok", hostname="h", e2e_s=e2e, decode_tok_s=50 / e2e,
                        generated_tokens=50, answer="3.14", token_ns=[1])


@pytest.fixture
def bench_file(tmp_path):
    rows = [bench(0, "pp64", 1, 9.0, -1)]  # a slow warmup: never in a statistic
    rows += [bench(1 + i, "pp64", 1, e, i) for i, e in enumerate((0.1, 0.2, 0.3))]
    rows += [bench(4 + i, "tg16", 1, e, i) for i, e in enumerate((0.4, 0.4, 0.4, 0.4, 0.4, 0.4, 2.0))]
    rows += [bench(11, "tg16", 2, 1.0, 0, status="failed")]
    path = tmp_path / "results.h5"
    write_results(path, dict(header(len(rows)), config_json="{}"), rows)
    return path


def run_cli(capsys, *argv):
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_llama_bench_csv_has_llama_benchs_header_and_statistics(bench_file):
    text, skipped = to_llama_bench_csv(read_results(bench_file))
    lines = text.splitlines()
    assert lines[0] == LLAMA_BENCH_HEADER == ",".join(LLAMA_BENCH_FIELDS) and skipped == 0
    assert all(line.startswith('"') and line.endswith('"') for line in lines[1:])  # every value quoted
    pp, tg = csv.DictReader(io.StringIO(text))  # the failed-only cell (tg16 at 2 threads) has no row
    assert (pp["n_prompt"], pp["n_gen"], pp["n_threads"], pp["n_depth"]) == ("64", "0", "1", "0")
    assert (pp["avg_ns"], pp["stddev_ns"]) == ("200000000", "100000000")  # warmup of 9 s left out
    rates = [640, 320, 64 / 0.3]
    assert float(pp["avg_ts"]) == pytest.approx(sum(rates) / 3, abs=1e-6)
    assert float(pp["stddev_ts"]) == pytest.approx(np.std(rates, ddof=1), abs=1e-6)
    assert pp["test_time"] == "2023-11-14T22:13:21Z"  # the first measured repetition (index 1)
    assert (pp["cpu_info"], pp["model_filename"], pp["model_n_params"], pp["backends"]) == ("cpu", "/m", "5", "CPU")
    assert (tg["n_prompt"], tg["n_gen"]) == ("0", "16")
    assert float(tg["avg_ts"]) == pytest.approx((6 * 40 + 8) / 7, abs=1e-6)  # the outlier is kept, as llama-bench


def test_llama_bench_csv_loads_like_compare_llama_bench_reads_it(bench_file, tmp_path, capsys):
    out = tmp_path / "mpibench.csv"
    assert run_cli(capsys, "export", str(bench_file), "--format", "llama-bench-csv", "--out", str(out))[0] == 0
    db = sqlite3.connect(":memory:")  # compare-llama-bench.py's CSV reader: DictReader rows into its table
    db.execute(f"CREATE TABLE test({', '.join(LLAMA_BENCH_FIELDS)})")
    with open(out, encoding="utf-8") as f:
        for row in csv.DictReader(f):
            db.execute(f"INSERT INTO test({', '.join(row)}) VALUES({', '.join('?' * len(row))})", tuple(row.values()))
    assert db.execute("SELECT build_commit, n_prompt, n_gen FROM test").fetchall() == [
        ("mpibench", "64", "0"), ("mpibench", "0", "16")]


def test_csv_and_json_give_every_statistic_per_cell(bench_file, tmp_path, capsys):
    code, out, _ = run_cli(capsys, "export", str(bench_file))
    assert code == 0
    rows = list(csv.DictReader(io.StringIO(out)))
    assert [(r["prompt_id"], r["threads"]) for r in rows] == [("pp64", "1"), ("tg16", "1"), ("tg16", "2")]
    pp, tg, failed = rows
    assert (pp["warmups"], pp["runs"], pp["main_metric"], pp["prefill_tok_s_n"]) == ("1", "3", "prefill_tok_s", "3")
    assert float(pp["e2e_s_median"]) == 0.2 and float(pp["e2e_s_max"]) == 0.3 and pp["e2e_s_outliers"] == ""
    assert tg["decode_tok_s_outliers"] == "6" and tg["cv_warning"] == "1"
    assert float(tg["e2e_s_ci_level"]) == pytest.approx(1 - 2 / 128)
    assert (failed["failed"], failed["e2e_s_n"], failed["e2e_s_median"]) == ("1", "0", "")
    code, out, _ = run_cli(capsys, "export", str(bench_file), "--format", "json")
    document = json.loads(out)  # strict JSON: NaN is null
    assert document["hosts"][0]["hostname"] == "h" and "outliers" in document["definitions"]
    tg = document["cells"][1]["metrics"]["decode_tok_s"]
    assert (tg["n"], tg["median"], tg["outliers"]) == (7, 40.0, [6])
    assert document["cells"][2]["metrics"]["e2e_s"]["median"] is None


@pytest.mark.parametrize("make, argv, message", [
    (None, ["missing.h5"], "no such file"),
    ("newer", ["{f}"], "newer than this mpibench reads"),
    ("bench", ["{f}", "--format", "md", "--rows"], "--rows writes csv, json, jsonl, not md"),
    ("bench", ["{f}", "--out", "{d}/no/such/dir/x.csv"], "cannot write"),
    ("query", ["{f}", "--format", "llama-bench-csv"], "no bench test"),
    ("empty", ["{f}"], "not a complete results file"),
])
def test_bad_input_is_one_line_and_exit_2(tmp_path, capsys, make, argv, message):
    path = tmp_path / "results.h5"
    if make in ("bench", "newer"):
        write_results(path, header(1), [bench(0, "pp64", 1, 0.1, 0)])
    if make == "query":
        write_results(path, header(1), [query(0, 1, 1.0, 0)])
    if make == "newer":
        with h5py.File(path, "a") as f:
            f.attrs["schema_version"] = 99
    if make == "empty":
        with h5py.File(path, "w") as f:
            f.attrs["schema_version"] = 2
    argv = [a.format(f=path, d=tmp_path) for a in argv]
    code, out, err = run_cli(capsys, "export", *argv)
    assert code == 2 and out == "" and message in err and len(err.strip().splitlines()) == 1


def test_an_unknown_format_is_refused_by_the_parser_with_the_choices(capsys):
    with pytest.raises(SystemExit) as stop:
        main(["export", "results.h5", "--format", "xlsx"])
    assert stop.value.code == 2
    assert "invalid choice: 'xlsx' (choose from 'csv', 'json', 'jsonl', 'md', 'llama-bench-csv', 'jtl')" in capsys.readouterr().err


def test_export_never_replaces_a_file_without_force(bench_file, tmp_path, capsys):
    out = tmp_path / "cells.csv"
    out.write_text("kept\n")
    code, stdout, err = run_cli(capsys, "export", str(bench_file), "--out", str(out))
    assert code == 2 and stdout == "" and f"{out} exists; pass --force" in err and len(err.splitlines()) == 1
    assert out.read_text() == "kept\n"
    assert run_cli(capsys, "export", str(bench_file), "--out", str(out), "--force")[0] == 0
    assert out.read_text().startswith("kind,model,prompt_id,threads")


def test_jsonl_and_md_give_the_cells_one_a_line_and_as_markdown_tables(bench_file, capsys):
    code, out, _ = run_cli(capsys, "export", str(bench_file), "--format", "jsonl")
    cells = [json.loads(line) for line in out.splitlines()]
    assert code == 0 and [(c["prompt_id"], c["threads"]) for c in cells] == [("pp64", 1), ("tg16", 1), ("tg16", 2)]
    assert cells[1]["decode_tok_s_median"] == 40.0 and cells[1]["decode_tok_s_outliers"] == [6]
    code, out, _ = run_cli(capsys, "export", str(bench_file), "--format", "md")
    table = [line for line in out.splitlines() if line.startswith("|")]
    assert code == 0 and table[0].startswith("| model | test | threads |") and table[1].startswith("| --- | --- | ---: |")
    assert len(table) == 2 + 3 and "\n\n| model" in out  # a blank line before the table, as Markdown needs


def _drop_columns(f: h5py.File, name: str, columns: set[str]) -> None:
    data = f[name][()]
    keep = [n for n in data.dtype.names if n not in columns]
    old = np.empty(data.shape, dtype=[(n, data.dtype[n]) for n in keep])
    for n in keep:
        old[n] = data[n]
    del f[name]
    f.create_dataset(name, data=old)


def test_files_without_the_new_columns_read_as_queries_without_warmups(tmp_path, capsys):
    path = tmp_path / "results.h5"
    write_results(path, header(3), [query(i, 1, 1.0 + i / 100, i) for i in range(3)])
    with h5py.File(path, "a") as f:
        _drop_columns(f, "results", {"kind", "warmup"})
        _drop_columns(f, "hosts", {"sockets", "numa_nodes", "l1d_bytes", "l1i_bytes", "l2_bytes", "l3_bytes",
                                   "boost", "thp", "simd", "llama_system_info", "simd_mismatch"})
    results = read_results(path)
    assert {(r["kind"], r["warmup"]) for r in results.results} == {("query", 0)}
    assert (results.hosts[0]["sockets"], results.hosts[0]["thp"]) == (0, "")
    code, out, _ = run_cli(capsys, "show", str(path))
    assert code == 0 and "? sockets" in out and "caches L1d ? L1i ?" in out
    table = [line for line in out.splitlines() if line.startswith("m ")]
    assert len(table) == 1 and "1.010-1.020" not in table[0] and "1.000-1.020*" in table[0]
    assert run_cli(capsys, "export", str(path), "--format", "json")[0] == 0


def test_show_prints_statistics_warnings_and_outliers_of_bench_cells(bench_file, capsys):
    code, out, _ = run_cli(capsys, "show", str(bench_file))
    assert code == 0 and "bench tests" in out and "t/s 95% CI" in out
    assert "warning: CV > 5 % in m tg16 threads=1 (n=7)" in out
    assert ("outlier: m tg16 threads=1 repetition 6: decode tok/s 8.000 (median 40.00), e2e s 2.000 (median 0.400)"
            in out)
    assert "failed: m tg16 t=2" in out
    assert max(map(len, out.splitlines())) <= 130
