"""`mpibench export --format jtl`: a load run's steady-window requests as JMeter's CSV results (JTL)."""

import csv
import io
import re

import mpibench.export
from helpers import header
from load_results import MS, STARTED_UNIX, load_run
from mpibench.cli import main
from mpibench.export import NOT_RUN_MESSAGE, to_jtl
from mpibench.store.hdf5 import Results, write_results
from mpibench.store.schema import empty_result

# The header JMeter 5 writes with its default jmeter.save.saveservice settings (CSVSaveService's order).
JMETER_HEADER = ("timeStamp,elapsed,label,responseCode,responseMessage,threadName,dataType,success,failureMessage,"
                 "bytes,sentBytes,grpThreads,allThreads,URL,Latency,IdleTime,Connect")
# How JMeter's CSVSaveService recognises a header line (and from it, which columns the file has).
JMETER_HEADER_PATTERN = re.compile(r'\w+((\W)\w+)?(\2\w+)*(\2"\w+")*')
INTEGERS = ("timeStamp", "elapsed", "bytes", "sentBytes", "grpThreads", "allThreads", "Latency", "IdleTime", "Connect")


def samples(results: Results) -> list[dict]:
    text, _ = to_jtl(results)
    assert text.splitlines()[0] == JMETER_HEADER and JMETER_HEADER_PATTERN.fullmatch(JMETER_HEADER)
    return list(csv.DictReader(io.StringIO(text)))


def test_jtl_has_jmeters_header_and_one_sample_per_steady_request_in_time_order():
    results = load_run()
    rows = samples(results)
    steady = [r for r in results.requests if r["phase"] == "steady"]
    assert len(rows) == len(steady) and to_jtl(results)[1] == len(results.requests) - len(steady) > 0
    for row in rows:  # JMeter parses these with Long.parseLong and Boolean.valueOf
        assert all(row[f].isdigit() for f in INTEGERS), row
        assert row["success"] in ("true", "false") and row["dataType"] == "text"
        assert row["threadName"].rsplit(" ", 1)[0] == row["label"]  # JMeter's thread group: the name before "1-N"
    stamps = [int(r["timeStamp"]) for r in rows]
    assert stamps == sorted(stamps)


def test_jtl_times_are_the_intended_start_end_to_end_and_time_to_first_token():
    results = load_run()
    points = {p["point"]: p for p in results.load_points}
    expected = sorted(((round(1000 * points[r["point"]]["started_unix"] + r["intended_ns"] / MS),
                        round(1000 * r["e2e_s"]), round(1000 * r["ttft_s"]), round(1000 * r["queue_s"]),
                        r["generated_tokens"], r["prompt_tokens"])
                       for r in results.requests if r["phase"] == "steady" and r["status"] == "ok"))
    got = sorted((int(r["timeStamp"]), int(r["elapsed"]), int(r["Latency"]), int(r["Connect"]), int(r["bytes"]),
                  int(r["sentBytes"])) for r in samples(results) if r["success"] == "true")
    assert got == expected
    first = next(r for r in samples(results) if r["label"] == "P1xS4xT2 4 users")
    # point 5 starts 500 s after point 0; its first steady request, 2.0-2.5 s after its t0
    assert 1000 * STARTED_UNIX + 502_000 <= int(first["timeStamp"]) < 1000 * STARTED_UNIX + 502_500
    assert (first["responseCode"], first["responseMessage"], first["grpThreads"], first["allThreads"]) == \
        ("200", "OK", "4", "4")


def test_failures_are_unsuccessful_samples_with_their_reason_on_one_line():
    rows = [r for r in samples(load_run()) if r["success"] == "false"]
    failed, never = sorted(rows, key=lambda r: r["responseCode"])
    assert (failed["responseCode"], failed["failureMessage"], failed["responseMessage"]) == \
        ("failed", "decode failed: KV cache full", "decode failed: KV cache full")
    assert (failed["elapsed"], failed["Latency"], failed["bytes"]) == ("10", "0", "0")  # 10 ms in the runner
    # never admitted: it waited at least until the point's last request ended
    results = load_run()
    point_end = max(r["end_ns"] for r in results.requests if r["point"] == 2)
    lost = next(r for r in results.requests if r["status"] == "not_run")
    assert (never["responseCode"], never["failureMessage"]) == ("not_run", NOT_RUN_MESSAGE)
    assert int(never["elapsed"]) == int(never["Connect"]) == round((point_end - lost["intended_ns"]) / MS) > 0


def test_an_open_loop_names_threads_by_request_and_counts_the_requests_in_the_system():
    results = load_run(configs=((1, 1, 2),), users=(), rates=(4.0,))  # the queue grows: 3 requests/s served
    bins = {b["t_s"]: b["in_system"] for b in results.timeline}
    rows = samples(results)
    assert {r["label"] for r in rows} == {"P1xS1xT2 4/s constant"}
    steady = sorted((r for r in results.requests if r["phase"] == "steady"), key=lambda r: r["intended_ns"])
    assert len(rows) == len(steady)
    for row, request in zip(rows, steady):
        assert row["threadName"] == f"P1xS1xT2 4/s constant 1-{request['request'] + 1}"
        assert int(row["grpThreads"]) == int(row["allThreads"]) == bins[float(request["intended_ns"] // 1_000_000_000)]
    assert int(rows[-1]["grpThreads"]) > int(rows[0]["grpThreads"]) + 2


def test_a_replicated_points_threads_are_named_by_node_as_distributed_jmeter_names_its_engines():
    results = load_run(configs=((1, 1, 2),), users=(2,))
    point = dict(results.load_points[0], replicas=2, hostname="node1,node2")
    requests = [dict(r, replica=r["request"] % 2) for r in results.requests]
    rows = samples(Results(**{**results.__dict__, "load_points": [point], "requests": requests}))
    steady = sorted((r for r in requests if r["phase"] == "steady"), key=lambda r: r["intended_ns"])
    assert sorted(r["threadName"] for r in rows) == sorted(
        f"node{1 + r['replica']}-P1xS1xT2 2 users, on each of 2 nodes 1-{1 + r['user']}" for r in steady)
    assert {r["threadName"].split("-")[0] for r in rows} == {"node1", "node2"}
    assert {(r["grpThreads"], r["allThreads"]) for r in rows} == {("2", "2")}  # each engine counts its own


def test_several_models_are_named_in_the_label():
    results = load_run(configs=((1, 1, 2),), users=(1,))
    two = Results(**{**results.__dict__, "load_points": results.load_points
                     + [dict(results.load_points[0], point=1, model="other")]})
    assert {r["label"] for r in samples(two)} == {"m P1xS1xT2 1 user"}


def run_cli(capsys, *argv):
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_export_jtl_of_a_run_that_is_not_a_load_run_asks_for_another_format(tmp_path, capsys):
    path = tmp_path / "results.h5"
    write_results(path, header(1), [empty_result(index=0, task_id="t0", model="m", prompt_id="pi", threads=1,
                                                 status="ok", hostname="h", e2e_s=1.0, answer="", token_ns=[])])
    code, out, err = run_cli(capsys, "export", str(path), "--format", "jtl")
    assert code == 2 and out == "" and len(err.strip().splitlines()) == 1
    assert "not a load run" in err and "use --format csv, json, jsonl, md, llama-bench-csv" in err


def test_export_jtl_writes_the_file_and_says_what_it_left_out(tmp_path, capsys, monkeypatch):
    """The load tables' reader is another part's: here it returns the hand-made run."""
    results = load_run()
    monkeypatch.setattr(mpibench.export, "read_results", lambda path, exclude_contended=False: results)
    out = tmp_path / "run.jtl"
    (tmp_path / "results.h5").write_bytes(b"")
    code, stdout, err = run_cli(capsys, "export", str(tmp_path / "results.h5"), "--format", "jtl", "--out", str(out))
    assert code == 0 and stdout == ""
    assert err == f"mpibench: {to_jtl(results)[1]} requests outside the steady windows (ramp-up, warm-up, " \
                  f"cool-down) left out\n"
    assert out.read_text() == to_jtl(results)[0]
    code, _, err = run_cli(capsys, "export", str(tmp_path / "results.h5"), "--format", "jtl", "--rows")
    assert code == 2 and "--rows writes csv, json, jsonl, not jtl" in err


def test_a_cell_export_of_a_load_run_points_to_jtl(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(mpibench.export, "read_results", lambda path, exclude_contended=False: load_run())
    assert main(["export", str(tmp_path / "run"), "--format", "csv"]) == 2
    assert "a load run has no task cells: export its requests with --format jtl" in capsys.readouterr().err
