"""A load point's figures (pure): its requests' rows, its row of load_points, its timeline, validity and the knee.

The steady window starts after the ramp-up and the warm-up and lasts the duration asked, cut short only when the
load stopped before its end (the reply's stopped_ns: every runner failed; a point that did not run has none).
Request-based figures count the requests whose intended start lies in the window, those that end after it
included; throughput counts the tokens generated within it. A point replicated on several nodes is summarised from
its replicas' requests pooled (load/records.py: they share t0), so its rates and concurrency are the replicas' sums. Latencies count from the intended start, so a slow
server cannot hide its queue (no coordinated omission). Every column is defined in store/schema.py.
"""

from __future__ import annotations

import bisect
import math
import statistics
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from mpibench.affinity import format_cpu_list
from mpibench.load.labels import replicated
from mpibench.protocol import FAILED, NOT_RUN, OK, LoadPoint, LoadPointReply, RequestRecord, Workload, fields_of
from mpibench.stats import quantile
from mpibench.store.schema import LOAD_LATENCIES, LOAD_QUANTILES

NAN = float("nan")
NS_PER_S = 1_000_000_000
BIN_NS = NS_PER_S  # the timeline's bins
# A p99 needs 300 completions: [x_(k), x_(n)] covers the p99 with 95 % once P(all n samples below it) = 0.99**n
# <= 0.05, i.e. n >= ln 0.05 / ln 0.99 = 298.1; n = 299 is the first n with a distribution-free 95 % bound
# (stats.quantile_ci_ranks gives it from there on), which the rule rounds to 300.
MIN_P99_COMPLETIONS = 300
MAX_DISPATCH_LAG_S = 1e-3
RATE_TOLERANCE = 0.01  # achieved within 1 % of the window's arrivals (open loop)
APDEX_TOLERATING = 4  # tolerating: TTFT up to 4 T
KNEE_GOODPUT_SHARE = 0.95
UNSTABLE_GROWTH = 0.05  # unstable: the queue's fitted growth over the window exceeds 5 % of its requests and 1
SLO_METRICS = ("ttft", "tpot", "e2e")  # the objectives a request can be held to, each on its {metric}_s column


@dataclass(frozen=True)
class PointSummary:
    """A load point's rows of the load tables: its load_points row (knee 0 until mark_knees), its requests (each
    with its "token_ns") and its timeline."""

    point: dict
    requests: tuple[dict, ...]
    timeline: tuple[dict, ...]


def _seconds(later: int, earlier: int, defined: bool = True) -> float:
    return (later - earlier) / NS_PER_S if defined and later >= 0 and earlier >= 0 else NAN


def _gaps(token_ns: Sequence[int]) -> list[float]:
    return [(b - a) / NS_PER_S for a, b in zip(token_ns, token_ns[1:])]


def request_row(point: int, record: RequestRecord) -> dict:
    """The requests row of one request of load point `point`, with its derived seconds and its "token_ns"."""
    ok = record.status == OK
    gaps = _gaps(record.token_ns) if ok else []
    return {"point": point, **fields_of(record),
            "ttft_s": _seconds(record.first_token_ns, record.intended_ns, ok),
            "e2e_s": _seconds(record.end_ns, record.intended_ns, ok),
            "queue_s": _seconds(record.admit_ns, record.intended_ns),
            "service_ttft_s": _seconds(record.first_token_ns, record.admit_ns, ok),
            "tpot_s": (record.token_ns[-1] - record.token_ns[0]) / NS_PER_S / len(gaps) if gaps else NAN,
            "itl_median_s": statistics.median(gaps) if gaps else NAN,
            "dispatch_lag_s": _seconds(record.dispatch_ns, record.intended_ns),
            "token_ns": tuple(record.token_ns)}


def workload_label(workload: Workload) -> str:
    """What each request of a workload asks, in a few words."""
    if workload.kind == "fixed":
        return f"fixed {workload.prompt_tokens}+{workload.gen_tokens} tokens"
    return f"{len(workload.prompts)} prompts, up to {workload.max_tokens} tokens"


def _leave(row: dict, ended_ns: int) -> int:
    """When a request left the system: its end, or the point's end for one that never ended."""
    return max(row["intended_ns"], row["end_ns"] if row["end_ns"] >= 0 else ended_ns)


def timeline_rows(point: int, rows: Sequence[dict], ended_ns: int) -> list[dict]:
    """1-second bins from t0 to the point's end: arrivals, admissions, completions and tokens in each, and the
    requests in the system and queued at each bin's end."""
    horizon = max([ended_ns] + [max(r["intended_ns"], r["end_ns"], *r["token_ns"]) for r in rows])
    bins = -(-horizon // BIN_NS)
    counts = {name: Counter(t // BIN_NS for t in times) for name, times in (
        ("arrived", [r["intended_ns"] for r in rows]),
        ("admitted", [r["admit_ns"] for r in rows if r["admit_ns"] >= 0]),
        ("completed", [r["end_ns"] for r in rows if r["status"] == OK and r["end_ns"] >= 0]),
        ("output_tokens", [t for r in rows for t in r["token_ns"]]))}
    arrivals = sorted(r["intended_ns"] for r in rows)
    leaves = sorted(_leave(r, ended_ns) for r in rows)
    admissions = sorted(r["admit_ns"] if r["admit_ns"] >= 0 else _leave(r, ended_ns) for r in rows)
    timeline = []
    for i in range(bins):
        end = (i + 1) * BIN_NS
        arrived = bisect.bisect_left(arrivals, end)
        timeline.append({"point": point, "t_s": float(i), **{name: c[i] for name, c in counts.items()},
                         "in_system": arrived - bisect.bisect_left(leaves, end),
                         "queued": arrived - bisect.bisect_left(admissions, end)})
    return timeline


def queue_slope(timeline: Sequence[dict], start_ns: int, end_ns: int) -> float:
    """Least-squares slope (requests/s) of the requests queued at the ends of the bins that end within the
    window; NaN with fewer than 2 such bins."""
    points = [(row["t_s"] + 1, row["queued"]) for row in timeline
              if start_ns < (row["t_s"] + 1) * NS_PER_S <= end_ns]
    if len(points) < 2:
        return NAN
    return statistics.linear_regression(*zip(*points)).slope


def is_stable(slope: float, window_s: float, requests: int) -> bool:
    """The queue does not keep growing: its fitted growth over the window is at most 1 request or 5 % of the
    window's requests (a stable queue's line is flat up to noise; an overloaded one rises by the share of
    arrivals left unserved)."""
    return math.isfinite(slope) and slope * window_s <= max(1.0, UNSTABLE_GROWTH * requests)


def _latency_columns(samples: dict[str, list[float]], completed: int) -> dict:
    """{m}_{q}_s and its interval for each latency and quantile; the p99s NaN under MIN_P99_COMPLETIONS."""
    columns = {}
    for metric in LOAD_LATENCIES:
        for name, q in LOAD_QUANTILES:
            found = quantile(samples[metric], q)
            shown = name != "p99" or completed >= MIN_P99_COMPLETIONS
            columns.update({f"{metric}_{name}_s": found.value if shown else NAN,
                            f"{metric}_{name}_lo_s": found.low if shown else NAN,
                            f"{metric}_{name}_hi_s": found.high if shown else NAN})
    return columns


def _objectives(slos: Mapping[str, float | None]) -> dict[str, float]:
    """The SLOs in seconds by metric (ttft, tpot, e2e), NaN where none is set (None or absent in `slos`)."""
    return {name: NAN if slos.get(name) is None else float(slos[name]) for name in SLO_METRICS}


def _meets(row: dict, objectives: dict[str, float]) -> bool:
    """An ok request within every objective set (a one-token answer has no TPOT: it cannot miss that one)."""
    return row["status"] == OK and all(
        math.isnan(limit) or row[f"{name}_s"] <= limit or (name == "tpot" and math.isnan(row["tpot_s"]))
        for name, limit in objectives.items())


def apdex(rows: Sequence[dict], t_s: float) -> float:
    """APDEX on TTFT with threshold `t_s`: (satisfied + tolerating / 2) / requests; failed and not-run requests
    are frustrated. NaN without a threshold or requests."""
    if math.isnan(t_s) or not rows:
        return NAN
    ttfts = [r["ttft_s"] for r in rows if r["status"] == OK]
    satisfied = sum(t <= t_s for t in ttfts)
    tolerating = sum(t_s < t <= APDEX_TOLERATING * t_s for t in ttfts)
    return (satisfied + tolerating / 2) / len(rows)


def _window(point: LoadPoint, reply: LoadPointReply) -> tuple[int, int, int]:
    """The steady window's start, its measured end and its asked end, ns from t0."""
    start = round((point.phases.ramp_up_s + point.phases.warmup_s) * NS_PER_S)
    asked = start + round(point.phases.duration_s * NS_PER_S)
    stopped = 0 if reply.error else reply.stopped_ns
    return start, asked if stopped < 0 else max(start, min(asked, stopped)), asked


def invalid_reasons(point: LoadPoint, reply: LoadPointReply, row: dict, asked_end_ns: int, end_ns: int) -> list[str]:
    """The validity rules a point's row breaks, each in words."""
    reasons = [f"did not run: {reply.error}"] if reply.error else []
    if end_ns < asked_end_ns:
        reasons.append(f"steady window {row['window_s']:.3g} s, shorter than the {point.phases.duration_s:g} s asked")
    if row["completed"] < MIN_P99_COMPLETIONS:
        reasons.append(f"{row['completed']} completions, fewer than the {MIN_P99_COMPLETIONS} a p99 needs "
                       "(p99s not reported)")
    if point.shape.mode == "open" and row["window_s"] > 0 and not abs(row["achieved_rps"] - row["arrival_rps"]) \
            <= RATE_TOLERANCE * row["arrival_rps"]:
        reasons.append(f"achieved {row['achieved_rps']:.4g}/s, not within {RATE_TOLERANCE * 100:g} % of the "
                       f"{row['arrival_rps']:.4g}/s that arrived in the window")
    if row["dispatch_lag_p99_s"] > MAX_DISPATCH_LAG_S:
        reasons.append(f"p99 dispatch lag {row['dispatch_lag_p99_s'] * 1e3:.3g} ms, over "
                       f"{MAX_DISPATCH_LAG_S * 1e3:g} ms")
    return reasons


def _setting_columns(point: LoadPoint, reply: LoadPointReply, objectives: dict[str, float]) -> dict:
    """The columns of a load_points row that say what the point was."""
    server, shape, phases = point.server, point.shape, point.phases
    return {"point": point.index, "server": server.label, "load": replicated(shape, point.replicas), "partitions": server.partitions,
            "slots": server.slots, "threads": server.threads, "kv_unified": int(server.kv_unified), "mode": shape.mode,
            "users": shape.users, "think": shape.think, "think_s": shape.think_s, "rate": shape.rate,
            "arrivals": shape.arrivals, "gamma_shape": shape.gamma_shape, "max_concurrency": shape.max_concurrency,
            "workload": workload_label(point.workload), "model": point.model, "synthetic": point.synthetic,
            "n_ctx": point.n_ctx, "seed": point.seed, "cores": format_cpu_list(point.cores),
            "generator_core": point.generator_core, "replicas": point.replicas, "ramp_up_s": phases.ramp_up_s, "warmup_s": phases.warmup_s,
            "cooldown_s": phases.cooldown_s, "drain_s": phases.drain_s, "hostname": reply.hostname,
            "started_unix": reply.started_unix, "runners_json": reply.runners_json, "error": reply.error,
            "duration_s": phases.duration_s, **{f"slo_{name}_s": limit for name, limit in objectives.items()},
            "apdex_t_s": objectives["ttft"], "generator_cpu_s": reply.generator_cpu_s}


def summarise(point: LoadPoint, reply: LoadPointReply, slos: Mapping[str, float | None]) -> PointSummary:
    """A load point's rows of the load tables, from the point, its worker's reply and the SLOs in seconds by metric
    ({"ttft": 0.5, "tpot": 0.05, "e2e": None}: None or absent, no objective on that metric)."""
    objectives = _objectives(slos)
    rows = [request_row(point.index, r) for r in reply.requests]
    start, end, asked_end = _window(point, reply)
    seconds = (end - start) / NS_PER_S

    def per_s(count: float) -> float:
        return count / seconds if seconds > 0 else NAN

    inside = [r for r in rows if start <= r["intended_ns"] < end]
    ok = [r for r in inside if r["status"] == OK]
    in_system = [_leave(r, reply.ended_ns) - r["intended_ns"] for r in inside]
    overlap = sum(max(0, min(_leave(r, reply.ended_ns), end) - max(r["intended_ns"], start)) for r in rows)
    tokens = sum(start <= t < end for r in rows for t in r["token_ns"])
    prompts = sum(r["prompt_tokens"] for r in rows if start <= r["first_token_ns"] < end)
    samples = {"ttft": [r["ttft_s"] for r in ok if not math.isnan(r["ttft_s"])],
               "tpot": [r["tpot_s"] for r in ok if not math.isnan(r["tpot_s"])],
               "itl": [gap for r in ok for gap in _gaps(r["token_ns"])],
               "e2e": [r["e2e_s"] for r in ok if not math.isnan(r["e2e_s"])],
               "queue": [r["queue_s"] for r in inside if not math.isnan(r["queue_s"])]}
    timeline = timeline_rows(point.index, rows, reply.ended_ns)
    slope = queue_slope(timeline, start, end)
    good = sum(_meets(r, objectives) for r in inside)
    arrival = per_s(len(inside))
    mean_concurrency = per_s(overlap / NS_PER_S)
    littles = arrival * statistics.fmean(in_system) / NS_PER_S if in_system else NAN
    row = {**_setting_columns(point, reply, objectives), "window_s": seconds, "requests": len(inside),
           "completed": len(ok), "failed": sum(r["status"] == FAILED for r in inside), "not_run": sum(r["status"] == NOT_RUN for r in inside),
           "offered_rps": point.shape.rate * point.replicas if point.shape.mode == "open" else NAN, "arrival_rps": arrival,
           "achieved_rps": per_s(sum(0 <= r["dispatch_ns"] < end for r in inside)), "completed_rps": per_s(len(ok)),
           "output_tok_s": per_s(tokens), "total_tok_s": per_s(tokens + prompts),
           "mean_concurrency": mean_concurrency, "littles_concurrency": littles,
           "littles_error": littles / mean_concurrency - 1 if mean_concurrency > 0 else NAN,
           **_latency_columns(samples, len(ok)), "goodput_rps": per_s(good),
           "goodput_share": good / len(inside) if inside else NAN, "apdex": apdex(inside, objectives["ttft"]),
           "queue_slope": slope, "stable": int(is_stable(slope, seconds, len(inside))),
           "dispatch_lag_p99_s": quantile([r["dispatch_lag_s"] for r in inside if r["dispatch_ns"] >= 0], 0.99).value,
           "knee": 0}
    reasons = invalid_reasons(point, reply, row, asked_end, end)
    row.update(valid=int(not reasons), invalid_reasons="; ".join(reasons))
    return PointSummary(row, tuple(rows), tuple(timeline))


def mark_knees(points: Sequence[dict]) -> list[dict]:
    """load_points rows with `knee` set on each server configuration's knee (per model and workload): its stable,
    valid point of largest achieved rate whose goodput is at least 95 % of its requests."""
    best: dict[tuple, dict] = {}
    for p in points:
        if p["stable"] and p["valid"] and p["goodput_share"] >= KNEE_GOODPUT_SHARE:
            key = (p["model"], p["workload"], p["server"], p["kv_unified"])
            if key not in best or p["achieved_rps"] > best[key]["achieved_rps"]:
                best[key] = p
    knees = {p["point"] for p in best.values()}
    return [dict(p, knee=int(p["point"] in knees)) for p in points]
