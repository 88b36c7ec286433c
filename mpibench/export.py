"""`mpibench export`: per-cell statistics of a results file as CSV, JSON, JSON lines or Markdown, or as
llama-bench's CSV; with --rows, one row per task instead (mpibench.results.rows).

csv / json / jsonl: one row (object, line) per cell with every statistic of every metric (mpibench.stats);
the raw samples stay in the HDF5 file. md: the tables of `mpibench show` as Markdown. llama-bench-csv: the header llama-bench prints with `-o csv` (the
llama.cpp vendored in llama-cpp-python 0.3.36, tools/llama-bench/llama-bench.cpp) and one row per bench
cell, so llama.cpp's scripts (compare-llama-bench.py) read it; query cells have no llama-bench test and
are left out. jtl: a load run's requests as JMeter's CSV results file (to_jtl), so that `jmeter -g run.jtl -o
dashboard/` draws JMeter's HTML dashboard of it.
"""

from __future__ import annotations

import csv
import io
import json
import math
import sys
import time
from bisect import bisect_right
from pathlib import Path

from mpibench.config import bench_test_sizes
from mpibench.formats import EXPORT_FORMATS as FORMATS, ROW_FORMATS
from mpibench.load.labels import label, several_models
from mpibench.results import ROW_DEFINITIONS, rows
from mpibench.stats import CV_LIMIT, Stats
from mpibench.store.hdf5 import Results, read_results
from mpibench.store.schema import ROOFLINE_DEFINITIONS
from mpibench.summary import CELL_METRICS, Cell, bench_rate_metric, cells, grouped, is_warmup, report
from mpibench.table import counted


STATISTICS = ("n", "median", "mean", "stdev", "mad", "ci_low", "ci_high", "ci_level", "min", "max", "cv")
CELL_COLUMNS = ("kind", "model", "prompt_id", "threads", "engine", "runs", "failed", "warmups", "contended",
                "main_metric", "cv_warning")
DEFINITIONS = {
    "prompt_id": "the prompt, or for bench cells the test: ppN or tgN",
    "engine": "the engine configuration of the cell's runs: CPU backend (variant, library sha256), weight buffer "
              "types, extra buffers; a model that ran with several has one cell per configuration",
    "runs": "measured repetitions, failed ones included; warmups are never in a statistic",
    "contended": "successful runs whose pinned cores did other work (results column contended; left out of the "
                 "statistics by --exclude-contended, and then not counted here)",
    "main_metric": "the metric the cell is about: e2e_s for queries, the test's tokens/s for bench cells",
    "cv_warning": f"1 when the main metric's coefficient of variation exceeds {CV_LIMIT:.0%}",
    "n": "successful measured repetitions with a value",
    "stdev": "sample standard deviation (n - 1)",
    "mad": "raw median absolute deviation (unscaled; x 1.4826 estimates a normal standard deviation)",
    "ci_low": "95 % confidence interval of the median, distribution-free (binomial order statistics); "
              "for n < 6 it is [min, max] with the lower coverage ci_level",
    "ci_level": "exact coverage of [ci_low, ci_high]",
    "cv": "stdev / mean",
    "outliers": "repetitions with |x - median| > 3 x 1.4826 x MAD: flagged, never dropped",
}

# llama-bench's CSV columns, in its order (test::get_fields).
LLAMA_BENCH_FIELDS = (
    "build_commit", "build_number", "cpu_info", "gpu_info", "backends", "model_filename", "model_type",
    "model_size", "model_n_params", "n_batch", "n_ubatch", "n_threads", "cpu_mask", "cpu_strict", "poll",
    "type_k", "type_v", "n_gpu_layers", "n_cpu_moe", "split_mode", "main_gpu", "no_kv_offload", "flash_attn",
    "devices", "tensor_split", "tensor_buft_overrides", "load_mode", "lazy_mode", "embeddings", "no_op_offload",
    "no_host", "repack", "fit_target", "fit_min_ctx", "n_prompt", "n_gen", "n_depth", "test_time", "avg_ns",
    "stddev_ns", "avg_ts", "stddev_ts",
)
# The "build" our rows belong to in llama.cpp's scripts, beside llama-bench's (a git commit, or "unknown" when
# built from the sdist); compare-llama-bench.py shortens build names to the shortest one (e.g. "mpibenc").
BUILD_COMMIT = "mpibench"
# What llama-bench prints for settings mpibench leaves at llama.cpp's defaults (llama-bench's defaults too):
# n_batch and n_ubatch are the engine's (2048, 512); the runner is pinned by sched_setaffinity, not by
# llama.cpp's cpu_mask, which stays unset (0x0).
LLAMA_BENCH_DEFAULTS = {
    "build_commit": BUILD_COMMIT, "build_number": "0", "gpu_info": "", "backends": "CPU", "n_batch": "2048",
    "n_ubatch": "512", "cpu_mask": "0x0", "cpu_strict": "0", "poll": "50", "type_k": "f16", "type_v": "f16",
    "n_gpu_layers": "-1", "n_cpu_moe": "0", "split_mode": "layer", "main_gpu": "0", "no_kv_offload": "0",
    "flash_attn": "-1", "devices": "auto", "tensor_split": "0.00", "tensor_buft_overrides": "none",
    "load_mode": "auto", "lazy_mode": "auto", "embeddings": "0", "no_op_offload": "0", "no_host": "0", "repack": "1",
    "fit_target": "0", "fit_min_ctx": "0", "n_depth": "0",
}

# JMeter's CSV results columns, in the order JMeter 5 writes them with its default jmeter.save.saveservice
# settings (org.apache.jmeter.save.CSVSaveService; bin/jmeter.properties).
JTL_FIELDS = ("timeStamp", "elapsed", "label", "responseCode", "responseMessage", "threadName", "dataType", "success",
              "failureMessage", "bytes", "sentBytes", "grpThreads", "allThreads", "URL", "Latency", "IdleTime",
              "Connect")
NOT_RUN_MESSAGE = "never admitted: still queued when the drain ended"


class ExportError(ValueError):
    """A results file that cannot be exported in the asked format; the message says why."""


def _number(value: float) -> float | None:
    return None if isinstance(value, float) and math.isnan(value) else value


def _metric_stats(cell: Cell, metric: str) -> dict:
    s: Stats = cell.stats[metric]
    values = {name: getattr(s, name) for name in STATISTICS}
    values["outliers"] = [cell.samples[metric][i][0] for i in s.outliers]
    return values


def _cell_fields(cell: Cell) -> dict:
    main = cell.stats[cell.main_metric]
    return {"kind": cell.kind, "model": cell.model, "prompt_id": cell.prompt_id, "threads": cell.threads,
            "engine": cell.engine, "runs": cell.runs, "failed": cell.failed, "warmups": cell.warmups,
            "contended": cell.contended, "main_metric": cell.main_metric,
            "cv_warning": int(not math.isnan(main.cv) and main.cv > CV_LIMIT)}


def to_csv(all_cells: list[Cell]) -> str:
    """One row per cell: its fields, then <metric>_<statistic> for every metric (empty where undefined)."""
    header = list(CELL_COLUMNS) + [f"{m}_{s}" for m in CELL_METRICS for s in STATISTICS + ("outliers",)]
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(header)
    for cell in all_cells:
        row = _cell_fields(cell)
        for metric in CELL_METRICS:
            for name, value in _metric_stats(cell, metric).items():
                row[f"{metric}_{name}"] = ";".join(map(str, value)) if name == "outliers" else _number(value)
        writer.writerow(["" if row[c] is None else row[c] for c in header])
    return out.getvalue()


def _cell_object(cell: Cell) -> dict:
    return dict(_cell_fields(cell), metrics={m: {k: _number(v) for k, v in _metric_stats(cell, m).items()}
                                             for m in CELL_METRICS})


def _document(results: Results, definitions: dict, key: str, items: list[dict]) -> str:
    """The run's identity, software, hosts and their bandwidth probes, the definitions, and the items (NaN
    written as null)."""
    document = {
        "run_id": results.attrs.get("run_id"), "schema_version": results.attrs.get("schema_version"),
        "software": json.loads(results.attrs.get("software_json", "{}")),
        "mpi_library_version": results.attrs.get("mpi_library_version"), "hosts": results.hosts,
        "bandwidth": [{k: _number(v) for k, v in row.items()} for row in results.bandwidth],
        "definitions": definitions, key: items,
    }
    return json.dumps(document, indent=1, allow_nan=False) + "\n"


def to_json(results: Results, all_cells: list[Cell]) -> str:
    """The run's identity and software, the definitions, and one object per cell."""
    return _document(results, DEFINITIONS | ROOFLINE_DEFINITIONS, "cells", [_cell_object(c) for c in all_cells])


def to_jsonl(items: list[dict]) -> str:
    """One JSON object a line (llama-bench's -o jsonl), NaN written as null."""
    return "".join(json.dumps({k: _number(v) for k, v in item.items()}, allow_nan=False) + "\n" for item in items)


def rows_csv(table: list[dict]) -> str:
    """One CSV row per task; NaN as an empty field."""
    out = io.StringIO()
    if table:
        writer = csv.DictWriter(out, fieldnames=list(table[0]), lineterminator="\n")
        writer.writeheader()
        writer.writerows({k: "" if _number(v) is None else v for k, v in row.items()} for row in table)
    return out.getvalue()


def _stdev(values: list[float]) -> float:
    """llama-bench's stdev: sample standard deviation, 0 for fewer than two samples."""
    if len(values) < 2:
        return 0.0
    mean = sum(values) / len(values)
    return math.sqrt(sum((v - mean) ** 2 for v in values) / (len(values) - 1))


def to_llama_bench_csv(results: Results) -> tuple[str, int]:
    """llama-bench's `-o csv` output for the bench cells, and how many query cells were left out."""
    models = {m["name"]: m for m in results.models}
    cpu_models = {h["hostname"]: h["cpu_model"] for h in results.hosts}
    groups = {key: [r for r in rows if not is_warmup(r) and r["status"] == "ok" and math.isfinite(r["e2e_s"])
                    and r["e2e_s"] > 0] for key, rows in grouped(results.results).items()}
    all_cells = cells(results.results)
    out = io.StringIO()
    out.write(",".join(LLAMA_BENCH_FIELDS) + "\n")
    writer = csv.writer(out, quoting=csv.QUOTE_ALL, lineterminator="\n")  # llama-bench quotes every value
    for cell in all_cells:
        sizes = bench_test_sizes(cell.prompt_id)
        rows = groups.get(cell.key, [])
        if cell.kind != "bench" or not sizes or not rows:
            continue
        n_prompt, n_gen = sizes
        samples_ns = [round(1e9 * r["e2e_s"]) for r in rows]  # llama-bench keeps integer nanoseconds
        rates = [r[bench_rate_metric(cell.prompt_id)] for r in rows]  # the stored rate (metrics.bench_throughput)
        model = models.get(cell.model, {})
        values = dict(
            LLAMA_BENCH_DEFAULTS,
            cpu_info=", ".join(sorted({cpu_models.get(r["hostname"], "") for r in rows})),
            model_filename=model.get("path", cell.model),
            model_type=model.get("llama_desc") or f"{model.get('architecture', '?')} "
                       f"{_size_label(model.get('parameters', 0))} {model.get('quantization', '?')}",
            model_size=str(model.get("llama_bytes") or model.get("size_bytes", 0)),
            model_n_params=str(model.get("parameters", 0)),
            n_threads=str(cell.threads), n_prompt=str(n_prompt), n_gen=str(n_gen),
            test_time=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(min(r["started_unix"] for r in rows))),
            avg_ns=str(sum(samples_ns) // len(samples_ns)), stddev_ns=str(int(_stdev(samples_ns))),
            avg_ts=f"{sum(rates) / len(rates):.6f}", stddev_ts=f"{_stdev(rates):.6f}",
        )
        writer.writerow([values[f] for f in LLAMA_BENCH_FIELDS])
    return out.getvalue(), sum(1 for c in all_cells if c.kind != "bench")


def _ms(ns: float) -> int:
    return round(ns / 1e6)


def _one_line(text: str) -> str:
    return " ".join(text.split())


def _ends(requests: list[dict]) -> dict[int, int]:
    """Each point's last end, ns from its t0: when a request never admitted was given up, at the earliest."""
    ends: dict[int, int] = {}
    for r in requests:
        ends[r["point"]] = max(ends.get(r["point"], 0), r["end_ns"])
    return ends


def _in_system(results: Results) -> dict[int, tuple[list[float], list[float]]]:
    """Per point, the timeline's bin starts (s from t0) and the requests in the system at each."""
    bins: dict[int, tuple[list[float], list[float]]] = {}
    for row in sorted(results.timeline, key=lambda b: (b["point"], b["t_s"])):
        starts, counts = bins.setdefault(row["point"], ([], []))
        starts.append(row["t_s"])
        counts.append(row["in_system"])
    return bins


def _concurrency(point: dict, intended_ns: int, bins: dict[int, tuple[list[float], list[float]]]) -> int:
    """JMeter's active threads when a request starts: a closed loop's users (of each replica, as each distributed
    JMeter engine counts its own); for an open loop, the requests in the system then (the timeline's bin, every
    replica's)."""
    if point["mode"] == "closed":
        return point["users"]
    starts, counts = bins.get(point["point"], ([], []))
    at = bisect_right(starts, intended_ns / 1e9) - 1
    return round(counts[at]) if at >= 0 else 0


def _thread_name(point: dict, request: dict, name: str) -> str:
    """JMeter's threadName, "<label> 1-<user>" (open loop: 1-<request>); a replica's prefixed with its node as
    distributed JMeter prefixes each engine's ("node2-<label> 1-<user>"), so that per-engine graphs keep them
    apart."""
    thread = f"{name} 1-{1 + (request['user'] if point['mode'] == 'closed' else request['request'])}"
    hosts = point["hostname"].split(",")
    return f"{hosts[request['replica']]}-{thread}" if point["replicas"] > 1 else thread


def to_jtl(results: Results) -> tuple[str, int]:
    """A load run's requests as JMeter's CSV results (JTL), and how many were left out for lying outside the steady
    window: one sample per request whose intended start lies in its point's steady window (ramp-up, warm-up and
    cool-down requests are not measured samples), in order of timeStamp.

    timeStamp: the intended start, epoch ms (JMeter's jmeter.properties ships sampleresult.timestamp.start=true:
    samples are stamped at their start). elapsed: end-to-end from the intended start, ms; for a request never
    admitted, until its point's last end. Latency: time to first token from the intended start (0 without one).
    Connect: queue time, intended start to admission (elapsed when never admitted). label: server configuration and
    load ("P1xS4xT2 8 users"); threadName: "<label> 1-<user>" (open loop: "1-<request>"), a replica's prefixed
    with its node ("node2-...", as distributed JMeter names each engine's threads). responseCode "200" and
    responseMessage "OK" when it succeeded, else its status (failed, timeout, not_run) and why. bytes and
    sentBytes: generated and prompt tokens, so the dashboard's byte throughput reads as tokens/s. grpThreads =
    allThreads: the users of a closed loop (a replica's), the requests in the system of an open loop."""
    points = {p["point"]: p for p in results.load_points}
    with_model = several_models(results.load_points)
    ends, bins = _ends(results.requests), _in_system(results)
    steady = [r for r in results.requests if r["phase"] == "steady"]
    rows = []
    for r in steady:
        point, ok, never = points[r["point"]], r["status"] == "ok", r["admit_ns"] < 0
        name = label(point, with_model)
        elapsed = max(0, _ms((ends[r["point"]] if r["end_ns"] < 0 else r["end_ns"]) - r["intended_ns"]))
        message = "OK" if ok else _one_line(r["error"]) or (NOT_RUN_MESSAGE if never else r["status"])
        threads = _concurrency(point, r["intended_ns"], bins)
        sample = {
            "timeStamp": round(1000 * point["started_unix"] + r["intended_ns"] / 1e6), "elapsed": elapsed,
            "label": name, "responseCode": "200" if ok else r["status"], "responseMessage": message,
            "threadName": _thread_name(point, r, name),
            "dataType": "text", "success": "true" if ok else "false", "failureMessage": "" if ok else message,
            "bytes": r["generated_tokens"], "sentBytes": r["prompt_tokens"], "grpThreads": threads,
            "allThreads": threads, "URL": "", "IdleTime": 0,
            "Latency": _ms(r["first_token_ns"] - r["intended_ns"]) if r["first_token_ns"] >= 0 else 0,
            "Connect": elapsed if never else _ms(r["admit_ns"] - r["intended_ns"]),
        }
        rows.append([sample[f] for f in JTL_FIELDS])
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(JTL_FIELDS)
    writer.writerows(sorted(rows, key=lambda row: row[0]))
    return out.getvalue(), len(results.requests) - len(steady)


def _size_label(parameters: int) -> str:
    """A size like llama.cpp's model type names ("135M", "7B")."""
    if parameters >= 10**9:
        return f"{parameters / 1e9:.0f}B"
    return f"{parameters / 1e6:.0f}M" if parameters else "?B"


def render(results: Results, fmt: str, per_task: bool = False) -> str:
    """The results in `fmt` (one of FORMATS): per cell, or with `per_task` per task (ROW_FORMATS)."""
    if per_task:
        table = rows(results, token_times=fmt != "csv")  # a list of token times does not fit a CSV field
        if fmt == "csv":
            return rows_csv(table)
        items = [{k: _number(v) for k, v in row.items()} for row in table]
        return to_jsonl(table) if fmt == "jsonl" else _document(results, ROW_DEFINITIONS, "rows", items)
    all_cells = cells(results.results)
    if fmt == "md":
        return report(all_cells, markdown=True) + "\n"
    if fmt == "jsonl":
        return to_jsonl([dict(_cell_fields(c), **{f"{m}_{k}": v for m in CELL_METRICS
                                                 for k, v in _metric_stats(c, m).items()}) for c in all_cells])
    return to_csv(all_cells) if fmt == "csv" else to_json(results, all_cells)


def export(path: str, fmt: str, out: str | None, force: bool = False, per_task: bool = False,
           exclude_contended: bool = False) -> int:
    """Write `path`'s cells (or with `per_task` its tasks) in `fmt` to `out` (stdout when None), replacing an
    existing `out` only with `force`; notes go to stderr. `exclude_contended` leaves contended runs out."""
    if fmt not in FORMATS:
        raise ExportError(f"unknown format {fmt!r}: use one of {', '.join(FORMATS)}")
    if per_task and fmt not in ROW_FORMATS:
        raise ExportError(f"--rows writes {', '.join(ROW_FORMATS)}, not {fmt}")
    if out is not None and Path(out).exists() and not force:
        raise ExportError(f"{out} exists; pass --force to replace it, or choose another --out")
    results = read_results(path, exclude_contended)
    if fmt == "jtl":
        if not results.load_points:
            raise ExportError(f"{path}: not a load run (no load points): JTL holds a load test's requests; use "
                              f"--format {', '.join(f for f in FORMATS if f != 'jtl')}")
        text, skipped = to_jtl(results)
        if skipped:
            print(f"mpibench: {counted(skipped, 'request')} outside the steady windows (ramp-up, warm-up, cool-down) "
                  f"left out", file=sys.stderr)
    elif results.load_points and not results.results:
        raise ExportError(f"{path}: a load run has no task cells: export its requests with --format jtl (its points: "
                          f"`mpibench show`, or results.h5's load_points table)")
    elif fmt == "llama-bench-csv":
        text, skipped = to_llama_bench_csv(results)
        if text.count("\n") == 1:
            raise ExportError(f"{path}: no bench test with a successful run to export in llama-bench's format "
                              f"(a query run? use --format csv or json)")
        if skipped:
            print(f"mpibench: {skipped} query cells left out (llama-bench has no such test)", file=sys.stderr)
    else:
        text = render(results, fmt, per_task)
    if out is None:
        sys.stdout.write(text)
        return 0
    try:
        Path(out).write_text(text)
    except OSError as error:
        raise ExportError(f"cannot write {out}: {error.strerror or error}") from None
    return 0
