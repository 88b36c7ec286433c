"""Real load tests: the real SmolLM2 model, real llama.cpp, continuous batching, under a real mpiexec.

Points are short (a few seconds): too few completions for a p99, so they are marked invalid, which is itself
checked. On a 2-core node the generator takes one core and a 1 x S x 1 server the other."""

import json
import os
import shutil
import signal
import subprocess
import time

import pytest

from helpers import mpi_env, mpibench, mpibench_command
from mpibench.load.records import from_record
from mpibench.preflight import FAULT_ENV
from mpibench.store.hdf5 import read_results

pytestmark = pytest.mark.integration

SHORT = ["-m", "smollm2-135m", "--duration", "3", "--warmup-time", "1", "--cooldown", "0", "-n", "8", "--no-plots"]


@pytest.fixture(scope="module")
def closed(tmp_path_factory):
    out = tmp_path_factory.mktemp("closed") / "run"
    proc = mpibench(2, "load", *SHORT, "--users", "1,3", "--servers", "1x1x1,1x2x1", "--out", str(out))
    assert proc.returncode == 0, proc.stderr
    return out, proc


def test_a_closed_loop_records_every_point_and_request_from_the_intended_start(closed):
    out, proc = closed
    results = read_results(out)
    points = results.load_points
    assert sorted((p["server"], p["users"]) for p in points) == [("P1xS1xT1", 1), ("P1xS1xT1", 3),
                                                                  ("P1xS2xT1", 1), ("P1xS2xT1", 3)]
    for point in points:
        assert point["completed"] > 0 and point["failed"] == 0
        assert point["window_s"] >= 3.0 and point["output_tok_s"] > 0
        assert not point["valid"] and "300" in point["invalid_reasons"]  # too few completions for a p99
    steady = [r for r in results.requests if r["phase"] == "steady" and r["status"] == "ok"]
    assert steady and all(r["intended_ns"] <= r["dispatch_ns"] <= r["admit_ns"] < r["first_token_ns"] <= r["end_ns"]
                          for r in steady)
    assert all(r["ttft_s"] >= r["service_ttft_s"] > 0 and len(r["token_ns"]) == r["generated_tokens"] for r in steady)
    three_users = [p for p in points if p["users"] == 3 and p["server"] == "P1xS1xT1"][0]
    queued = [r for r in results.requests if r["point"] == three_users["point"] and r["phase"] == "steady"]
    assert max(r["queue_s"] for r in queued) > 0  # 3 users on one single-sequence runner wait their turn
    assert results.timeline and "point" in proc.stdout  # the per-point table
    for point in points:  # every runner of every point ran the engine as built, which the preflight passed
        runners = json.loads(point["runners_json"])
        assert len(runners) == 1 and runners[0]["preflight"] == "1 as built: ok"
        assert runners[0]["engine_fallback"] == 0 and runners[0]["engine_extra_bufts"] == 1
        assert "CPU" in runners[0]["engine_weight_buffers"]


def test_a_batching_runner_serves_two_requests_at_once_and_a_single_one_never_does(closed):
    results = read_results(closed[0])

    def most_at_once(server: str) -> int:
        point = next(p["point"] for p in results.load_points if p["server"] == server and p["users"] == 3)
        spans = [(r["admit_ns"], r["end_ns"]) for r in results.requests if r["point"] == point and r["status"] == "ok"]
        return max(sum(a <= t < e for a, e in spans) for t, _ in spans)

    assert most_at_once("P1xS1xT1") == 1 and most_at_once("P1xS2xT1") == 2


def test_show_and_the_jtl_export_read_a_load_run(closed, tmp_path):
    out, _ = closed
    show = mpibench(None, "show", str(out))
    assert show.returncode == 0 and "P1xS2xT1" in show.stdout, show.stderr
    assert "preflight fallback" not in show.stdout  # the engine ran as built
    jtl = tmp_path / "run.jtl"
    export = mpibench(None, "export", str(out), "--format", "jtl", "--out", str(jtl))
    assert export.returncode == 0, export.stderr
    header, first = jtl.read_text().splitlines()[:2]
    assert header.startswith("timeStamp,elapsed,label,responseCode")
    assert first.split(",")[7] in ("true", "false")


def test_an_open_loop_point_keeps_its_rate(tmp_path):
    out = tmp_path / "open"
    proc = mpibench(2, "load", *SHORT, "--rate", "4", "--arrivals", "constant", "--servers", "1x4x1", "--out", str(out))
    assert proc.returncode == 0, proc.stderr
    (point,) = read_results(out).load_points
    assert point["mode"] == "open" and point["offered_rps"] == 4.0
    assert abs(point["achieved_rps"] - 4.0) <= 0.5


def test_a_sweep_goes_from_one_user_to_saturation_and_rates_between(tmp_path):
    out = tmp_path / "sweep"
    proc = mpibench(2, "load", *SHORT, "--sweep", "--sweep-rates", "2", "--servers", "1x2x1", "--out", str(out))
    assert proc.returncode == 0, proc.stderr
    points = read_results(out).load_points
    assert [(p["mode"], p["users"]) for p in points[:2]] == [("closed", 1), ("closed", 4)]  # 2 users a slot
    synchronous, saturated = points[0]["completed_rps"], points[1]["completed_rps"]
    if saturated > synchronous:  # rates between them, evenly spaced up to saturation (unless the queue grew)
        step = (saturated - synchronous) / 2
        assert [p["offered_rps"] for p in points[2:]] == pytest.approx([synchronous + step, saturated][:len(points) - 2])
        assert len(points) == 4 or not points[-1]["stable"]
    else:  # concurrency gained nothing: no rate lies between
        assert len(points) == 2


def test_resume_runs_only_the_points_the_journal_lacks(closed, tmp_path):
    out, _ = closed
    journal = (out / "journal.jsonl").read_text().splitlines()
    copy = tmp_path / "resumed"
    copy.mkdir()
    (copy / "run.json").write_text((out / "run.json").read_text())
    (copy / "journal.jsonl").write_text("\n".join(journal[:-1]) + "\n")
    proc = mpibench(2, "load", "--resume", str(copy), "--no-plots")
    assert proc.returncode == 0, proc.stderr
    keys = [json.loads(line)["task_id"] for line in (copy / "journal.jsonl").read_text().splitlines()]
    assert sorted(keys) == sorted(json.loads(line)["task_id"] for line in journal)
    assert len(read_results(copy).load_points) == 4


def test_resume_runs_a_failed_point_again(closed, tmp_path):
    out, _ = closed
    records = [json.loads(line) for line in (out / "journal.jsonl").read_text().splitlines()]
    records[0]["error"] = records[0]["replicas"][0]["reply"]["error"] = "rank 1 stopped answering"
    copy = tmp_path / "resumed"
    copy.mkdir()
    (copy / "run.json").write_text((out / "run.json").read_text())
    (copy / "journal.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
    proc = mpibench(2, "load", "--resume", str(copy), "--no-plots")
    assert proc.returncode == 0, proc.stderr
    again = [json.loads(line) for line in (copy / "journal.jsonl").read_text().splitlines()]
    assert len(again) == len(records) + 1 and again[-1]["task_id"] == records[0]["task_id"] and not again[-1]["error"]
    assert len(read_results(copy).load_points) == 4


@pytest.mark.parametrize("flags, message", [
    (("--servers", "1x1x8"), "error: server P1xS1xT8 needs 8 cores"),
    (("--replicas", "2"), "error: --replicas 2 runs each point on 2 nodes at once; this launch has 1 worker node"),
])
def test_a_load_that_does_not_fit_the_launch_is_refused_in_one_line(tmp_path, flags, message):
    proc = mpibench(2, "load", *SHORT, "--users", "1", *flags, "--out", str(tmp_path / "no"))
    assert proc.returncode == 2
    assert message in proc.stderr and "Traceback" not in proc.stderr



def test_load_runners_take_the_preflights_fallback(tmp_path):
    """The model's preflight is made to die by SIGSEGV as built (fault injection: this VM has no AMX, so the GCC
    tile-config crash cannot happen here): the load runners start with extra buffer types off, and say so."""
    out = tmp_path / "fallback"
    proc = mpibench(2, "load", *SHORT, "--users", "2", "--servers", "1x2x1", "--out", str(out),
                    env=mpi_env(**{FAULT_ENV: "SIGSEGV:1"}))
    assert proc.returncode == 0, proc.stderr
    assert "preflight (as built) died by SIGSEGV (signal 11)" in proc.stderr
    assert "smollm2-135m runs with extra buffer types off, not as built" in proc.stderr
    (point,) = read_results(out).load_points
    (runner,) = json.loads(point["runners_json"])
    assert point["completed"] > 0 and point["failed"] == 0
    assert runner["preflight"] == "1 as built: SIGSEGV (signal 11); 2 extra buffer types off: ok"
    assert runner["engine_fallback"] == 1 and runner["engine_extra_bufts"] == 0
    assert runner["hostname"] == point["hostname"]
    warning = f"warning: smollm2-135m on {point['hostname']} ran after a preflight fallback, not with its engine as built"
    assert warning in proc.stdout  # the per-point table at the run's end, as show prints it
    show = mpibench(None, "show", str(out))
    assert show.returncode == 0 and warning in show.stdout, show.stderr


def test_a_model_no_engine_configuration_runs_fails_its_points_in_one_line_each(tmp_path):
    out = tmp_path / "dead"
    proc = mpibench(2, "load", *SHORT, "--users", "1,2", "--servers", "1x2x1", "--out", str(out),
                    env=mpi_env(**{FAULT_ENV: "SIGILL:9"}))
    assert proc.returncode == 1 and "Traceback" not in proc.stderr
    failed = [line for line in proc.stderr.splitlines() if line.startswith("mpibench: point ") and "failed:" in line]
    assert len(failed) == 2, proc.stderr
    assert all("every engine configuration died in preflight" in line and "instructions this CPU lacks" in line
               for line in failed)
    journal = [from_record(json.loads(line)) for line in (out / "journal.jsonl").read_text().splitlines()]
    assert len(journal) == 2 and all("cannot run on" in reply.error for _, reply in journal)


def test_rebuild_keeps_how_a_load_run_ended(closed, tmp_path):
    """A load run's planned points are not known up front: rebuild keeps the status its launch ended with, and a
    launch killed before it ended (run.json still "running") is interrupted."""
    out, _ = closed
    copy = tmp_path / "complete"
    shutil.copytree(out, copy)
    (copy / "results.h5").unlink()
    rebuilt = mpibench(None, "rebuild", str(copy))
    assert rebuilt.returncode == 0, rebuilt.stderr
    assert rebuilt.stdout == f"{copy / 'results.h5'}: 4 load points, rebuilt from the journal; status complete\n"
    again = read_results(copy)
    assert again.attrs["status"] == "complete" and len(again.load_points) == 4

    killed = tmp_path / "killed"
    job = subprocess.Popen(mpibench_command(2, "load", *SHORT, "--users", "1,2,3", "--servers", "1x1x1", "--out",
                                            str(killed)), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                           env=mpi_env(), start_new_session=True)
    journal, deadline = killed / "journal.jsonl", time.monotonic() + 300
    while not (journal.exists() and journal.read_text().count("\n") >= 1):
        assert time.monotonic() < deadline and job.poll() is None, "the first point never reached the journal"
        time.sleep(0.1)
    os.killpg(job.pid, signal.SIGKILL)
    job.communicate()
    assert json.loads((killed / "run.json").read_text())["status"] == "running"
    rebuilt = mpibench(None, "rebuild", str(killed))
    assert rebuilt.returncode == 0, rebuilt.stderr
    assert rebuilt.stdout.endswith("load point, rebuilt from the journal; status interrupted\n") or \
        rebuilt.stdout.endswith("load points, rebuilt from the journal; status interrupted\n")
    partial = read_results(killed)
    assert partial.attrs["status"] == "interrupted" and 1 <= len(partial.load_points) < 3


def test_rebuild_of_a_load_run_with_a_damaged_point_says_so_in_one_line(closed, tmp_path):
    copy = tmp_path / "damaged"
    shutil.copytree(closed[0], copy)
    with (copy / "journal.jsonl").open("a") as journal:
        journal.write(json.dumps({"task_id": "x", "index": 9}) + "\n")  # valid JSON, but no point in it
    rebuilt = mpibench(None, "rebuild", str(copy))
    assert rebuilt.returncode == 2 and "Traceback" not in rebuilt.stderr
    assert rebuilt.stderr == (f"mpibench: error: {copy}: its run.json or a load point of its journal.jsonl is "
                              "damaged (KeyError: 'point')\n")
