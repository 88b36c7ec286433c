"""`mpibench show` for a load run (pure): one line per load point, then the validity rules each point broke, and
a warning where a model's load runners ran after a preflight fallback."""

from __future__ import annotations

import json
import math
from typing import TYPE_CHECKING

from mpibench.load.labels import configuration
from mpibench.summary import fallback_warning, format_number
from mpibench.table import table_lines

if TYPE_CHECKING:
    from mpibench.store.hdf5 import Results

HEADER = ("point", "server", "load", "window s", "completed", "rps achieved/offered", "output tok/s",
          "TTFT ms p50/p99", "TPOT ms p50/p99", "goodput rps (%)", "APDEX", "stable", "valid", "knee")


def _ms(seconds: float) -> str:
    return format_number(seconds * 1e3, 1)


def _pair(point: dict, metric: str) -> str:
    return f"{_ms(point[f'{metric}_p50_s'])}/{_ms(point[f'{metric}_p99_s'])}"


def _row(point: dict) -> tuple[str, ...]:
    offered = "-" if math.isnan(point["offered_rps"]) else format_number(point["offered_rps"])
    return (str(point["point"]), configuration(point), point["load"], format_number(point["window_s"], 1),
            f"{point['completed']}/{point['requests']}", f"{format_number(point['achieved_rps'])}/{offered}",
            format_number(point["output_tok_s"], 1), _pair(point, "ttft"), _pair(point, "tpot"),
            f"{format_number(point['goodput_rps'])} ({format_number(100 * point['goodput_share'], 0)} %)",
            format_number(point["apdex"], 2), "yes" if point["stable"] else "no", "yes" if point["valid"] else "no",
            "*" if point["knee"] else "")


def fallback_lines(points: list[dict]) -> list[str]:
    """A warning per (model, host) whose load runners ran after a preflight fallback (their runners_json says so)."""
    fallen = dict.fromkeys((p["model"], r.get("hostname", p["hostname"])) for p in points
                           for r in json.loads(p.get("runners_json") or "[]") if r.get("engine_fallback"))
    return [fallback_warning(model, host) for model, host in fallen]


def point_table(results: Results, markdown: bool = False) -> str:
    """A load run's per-point table, notes on its columns, and each point's validity (the rules it broke), as
    lines ending in a newline."""
    points = results.load_points
    lines = table_lines([HEADER, *(_row(p) for p in points)], left=3, markdown=markdown)
    slo = points[0] if points else {}
    objectives = ", ".join(f"{name} <= {_ms(slo[column])} ms" for name, column in
                           (("TTFT", "slo_ttft_s"), ("TPOT", "slo_tpot_s"), ("e2e", "slo_e2e_s"))
                           if not math.isnan(slo.get(column, math.nan)))
    notes = ["completed = ok requests / requests whose intended start lies in the steady window; latencies from "
             "the intended start; p99 '-' under 300 completions",
             f"goodput: requests within every objective ({objectives or 'none given: every ok request'}); APDEX on "
             "TTFT; knee * = a configuration's largest stable, valid point with goodput >= 95 %"]
    validity = [f"point {p['point']} ({configuration(p)}, {p['load']}): "
                + ("valid" if p["valid"] else f"invalid: {p['invalid_reasons']}") for p in points]
    gap = [""] if markdown else []
    warnings = fallback_lines(points)
    return "\n".join(lines + gap + notes + gap + ["validity rules per point:"] + validity
                     + (gap + warnings if warnings else [])) + "\n"
