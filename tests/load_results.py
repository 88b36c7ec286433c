"""A load run's results made by hand (`Results` with load_points, requests and timeline rows shaped as
store/schema.py defines them), for the tests of everything that reads a load run: export, plots, report.

load_run() gives two server configurations (P1xS1xT2 and P1xS4xT2) under closed loops of 1, 2 and 4 users: each
user sends 16-token requests back to back; a point's phases are warm-up 0-2 s, steady 2-12 s, cool-down 12-13 s.
Its point rows are computed from its request rows, so that the tables agree with each other."""

from __future__ import annotations

import math
import heapq
from itertools import accumulate

from helpers import header
from mpibench.store.hdf5 import Results
from mpibench.store.schema import HOST_COLUMNS, KIND_DEFAULTS, MODEL_COLUMNS

MS = 1_000_000
S = 1_000_000_000
WARMUP_S, STEADY_S, COOLDOWN_S = 2, 10, 1
GENERATED = 16
PROMPT_TOKENS = 12
STARTED_UNIX = 1_700_000_000.0
CONFIGS = ((1, 1, 2), (1, 4, 2))  # (partitions, slots, threads)
USERS = (1, 2, 4)
QUANTILES = {"p50": 50, "p90": 90, "p95": 95, "p99": 99}
INVALID = "achieved rate 2.0 % below offered (limit 1 %)"


def phase(intended_ns: int) -> str:
    t = intended_ns / S
    return "warmup" if t < WARMUP_S else "steady" if t < WARMUP_S + STEADY_S else "cooldown"


def service(slots: int, users: int) -> tuple[int, int, int]:
    """(queue, prefill, time per output token) in ns of a request under `users` on a runner of `slots`: sequences
    batched together decode a little slower each; users beyond the slots wait in the queue for one."""
    batch = min(users, slots)
    tpot = int(20 * MS * (1 + 0.15 * (batch - 1)))
    prefill = 40 * MS
    e2e = prefill + (GENERATED - 1) * tpot
    return (math.ceil(users / slots) - 1) * e2e, prefill, tpot


def request_row(point: int, request: int, user: int, intended: int, queue: int, prefill: int, tpot: int,
                **overrides) -> dict:
    """One served request: intended, dispatched 50 us later, admitted after its queue, first token after the
    prefill, then a token every `tpot`."""
    admit = intended + 50_000 + queue
    tokens = tuple(admit + prefill + i * tpot for i in range(GENERATED))
    row = {"point": point, "request": request, "user": user, "runner": 0, "prompt_id": "pi", "phase": phase(intended),
           "status": "ok", "error": "", "intended_ns": intended, "dispatch_ns": intended + 50_000, "admit_ns": admit,
           "first_token_ns": tokens[0], "end_ns": tokens[-1], "prompt_tokens": PROMPT_TOKENS,
           "generated_tokens": GENERATED, "token_ns": tokens, "replica": 0}
    return derived(dict(row, **overrides))


def derived(row: dict) -> dict:
    """The request's derived seconds from its times (NaN where it never got there)."""
    def span(a: int, b: int) -> float:
        return (row[b] - row[a]) / S if row[a] >= 0 and row[b] >= 0 else math.nan
    tokens = row["token_ns"]
    gaps = sorted(b - a for a, b in zip(tokens, tokens[1:]))
    return dict(row, ttft_s=span("intended_ns", "first_token_ns"), e2e_s=span("intended_ns", "end_ns"),
                queue_s=span("intended_ns", "admit_ns"), service_ttft_s=span("admit_ns", "first_token_ns"),
                dispatch_lag_s=span("intended_ns", "dispatch_ns"),
                tpot_s=(tokens[-1] - tokens[0]) / (len(tokens) - 1) / S if len(tokens) > 1 else math.nan,
                itl_median_s=gaps[len(gaps) // 2] / S if gaps else math.nan)


def closed_loop(point: int, slots: int, users: int) -> list[dict]:
    """Every user's requests back to back from t0 until the cool-down ends."""
    queue, prefill, tpot = service(slots, users)
    e2e = queue + prefill + (GENERATED - 1) * tpot
    rows = []
    for user in range(users):
        starts = accumulate([user * e2e // users] + [e2e] * 10_000)
        for intended in starts:
            if intended >= (WARMUP_S + STEADY_S + COOLDOWN_S) * S:
                break
            rows.append(request_row(point, 0, user, intended, queue, prefill, tpot))
    rows.sort(key=lambda r: r["intended_ns"])
    return [dict(r, request=i) for i, r in enumerate(rows)]


def open_loop(point: int, slots: int, rate: float) -> list[dict]:
    """Constant arrivals at `rate` from t0 until the cool-down ends, each served alone at the speed of one sequence
    by the first of `slots` free; the rest wait in the queue."""
    _, prefill, tpot = service(slots, 1)
    free = [0] * slots
    rows = []
    for i in range(int(rate * (WARMUP_S + STEADY_S + COOLDOWN_S))):
        intended = round(i * S / rate)
        admit = max(intended + 50_000, heapq.heappop(free))
        heapq.heappush(free, admit + prefill + (GENERATED - 1) * tpot)
        rows.append(request_row(point, i, -1, intended, admit - intended - 50_000, prefill, tpot))
    return rows


def quantile(values: list[float], q: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, int(q / 100 * len(values)))] if values else math.nan


def point_row(index: int, server: tuple[int, int, int], users: int, requests: list[dict], rate: float = 0.0,
              **overrides) -> dict:
    """The load_points row of `requests` (steady window only): a closed loop of `users`, or with `rate` an open
    loop of constant arrivals; intervals +-10 % of the percentile; a p99 only from 300 completions, as the validity
    rule asks."""
    partitions, slots, threads = server
    steady = [r for r in requests if r["phase"] == "steady"]
    done = [r for r in steady if r["status"] == "ok"]
    output = sum(r["generated_tokens"] for r in done)
    row = {"point": index, "server": f"P{partitions}xS{slots}xT{threads}", "partitions": partitions, "slots": slots,
           "threads": threads, "kv_unified": 0, "mode": "open" if rate else "closed", "users": users, "think": "none",
           "think_s": 0.0, "rate": rate, "arrivals": "constant" if rate else "", "gamma_shape": 0.5,
           "max_concurrency": 0, "workload": "fixed 12+16", "model": "m", "replicas": 1,
           "hostname": "h", "started_unix": STARTED_UNIX + 100 * index, "duration_s": float(STEADY_S),
           "window_s": float(STEADY_S), "requests": len(steady), "completed": len(done),
           "failed": sum(r["status"] == "failed" for r in steady),
           "not_run": sum(r["status"] == "not_run" for r in steady), "offered_rps": rate or math.nan,
           "arrival_rps": len(steady) / STEADY_S,
           "achieved_rps": len(done) / STEADY_S, "completed_rps": len(done) / STEADY_S,
           "output_tok_s": output / STEADY_S, "total_tok_s": (output + PROMPT_TOKENS * len(done)) / STEADY_S,
           "mean_concurrency": float(users), "littles_concurrency": float(users), "littles_error": 0.0}
    for metric, column in (("ttft", "ttft_s"), ("tpot", "tpot_s"), ("itl", "itl_median_s"), ("e2e", "e2e_s"),
                           ("queue", "queue_s")):
        for name, q in QUANTILES.items():
            value = quantile([r[column] for r in done], q) if q < 99 or len(done) >= 300 else math.nan
            row |= {f"{metric}_{name}_s": value, f"{metric}_{name}_lo_s": 0.9 * value,
                    f"{metric}_{name}_hi_s": 1.1 * value}
    def queued(t: int) -> int:
        return sum(r["intended_ns"] < t <= r["admit_ns"] or (r["admit_ns"] < 0 and r["intended_ns"] < t)
                   for r in requests)
    slope = (queued((WARMUP_S + STEADY_S) * S) - queued(WARMUP_S * S)) / STEADY_S
    row |= {"slo_ttft_s": 0.5, "slo_tpot_s": 0.05, "slo_e2e_s": math.nan, "goodput_rps": len(done) / STEADY_S,
            "goodput_share": 1.0, "apdex": 1.0, "apdex_t_s": 0.5, "queue_slope": slope,
            "stable": int(slope * STEADY_S <= 1), "valid": 1,
            "invalid_reasons": "", "knee": 0, "dispatch_lag_p99_s": 50e-6, "generator_cpu_s": 0.01}
    return row | overrides


def timeline(point: int, requests: list[dict]) -> list[dict]:
    """1-second bins from t0 to the last end: what arrived, was admitted, completed, and the tokens made in each; in
    system and queued at the bin's end."""
    bins = max(r["end_ns"] for r in requests) // S + 1
    rows = []
    for b in range(bins):
        lo, hi = b * S, (b + 1) * S
        rows.append({"point": point, "t_s": float(b),
                     "arrived": sum(lo <= r["intended_ns"] < hi for r in requests),
                     "admitted": sum(lo <= r["admit_ns"] < hi for r in requests),
                     "completed": sum(lo <= r["end_ns"] < hi for r in requests),
                     "output_tokens": sum(lo <= t < hi for r in requests for t in r["token_ns"]),
                     "in_system": sum(r["intended_ns"] < hi <= r["end_ns"] for r in requests),
                     "queued": sum(r["intended_ns"] < hi <= r["admit_ns"] for r in requests)})
    return rows


def load_run(configs=CONFIGS, users=USERS, rates=()) -> Results:
    """Points of every configuration x (user count, then open-loop rate), in that order. P1xS1xT2 at 4 users is
    marked invalid (achieved rate 2 % below offered); the knee is the most users of each configuration among the
    valid closed-loop points. Point 0's last steady request failed; P1xS1xT2 at 4 users has one steady request
    never admitted (not_run)."""
    points, requests, bins = [], [], []
    for server in configs:
        valid = [u for u in users if not (server[1] == 1 and u == 4)]
        for u in users:
            index = len(points)
            mine = closed_loop(index, server[1], u)
            if index == 0:  # its last steady request failed after 10 ms in the runner
                last = max(i for i, r in enumerate(mine) if r["phase"] == "steady")
                mine[last] = derived(dict(mine[last], status="failed", error="decode failed:\nKV cache full",
                                          first_token_ns=-1, end_ns=mine[last]["admit_ns"] + 10 * MS, token_ns=(),
                                          generated_tokens=0))
            if u not in valid:  # one more request arrived in the steady window and was never admitted
                mine.append(derived({**mine[-1], "request": len(mine), "user": 0, "phase": "steady",
                                     "status": "not_run", "intended_ns": (WARMUP_S + STEADY_S) * S - 1,
                                     "dispatch_ns": -1, "admit_ns": -1, "first_token_ns": -1, "end_ns": -1,
                                     "generated_tokens": 0, "token_ns": ()}))
            flags = {} if u in valid else {"valid": 0, "invalid_reasons": INVALID}
            points.append(point_row(index, server, u, mine, knee=int(u == max(valid)), **flags))
            requests += mine
            bins += timeline(index, [r for r in mine if r["end_ns"] >= 0])
        for rate in rates:
            mine = open_loop(len(points), server[1], rate)
            points.append(point_row(len(points), server, 0, mine, rate))
            requests += mine
            bins += timeline(points[-1]["point"], mine)
    head = header(total=len(points))
    return Results(attrs={"schema_version": 5, "run_id": "load1", "status": "complete", "total_tasks": len(points),
                          "started": "t", "finished": "t2", "mpi_library_version": "MPI", "world_size": 2},
                   hosts=[{c: KIND_DEFAULTS[k] for c, k in HOST_COLUMNS} | h for h in head["hosts"]],
                   models=[{c: KIND_DEFAULTS[k] for c, k in MODEL_COLUMNS} | m for m in head["models"]],
                   workers=head["workers"], prompts=head["prompts"],
                   results=[], load_points=points, requests=requests, timeline=bins)
