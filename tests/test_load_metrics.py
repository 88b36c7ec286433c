import math
import random
from dataclasses import dataclass
from fractions import Fraction

import pytest

from mpibench.load.metrics import (
    MIN_P99_COMPLETIONS, apdex, is_stable, mark_knees, request_row, summarise, timeline_rows,
)
from mpibench.load.sweep import SATURATION_USERS_PER_SLOT, next_sweep_shape, sweep_rates
from mpibench.load.table import point_table
from mpibench.protocol import (
    FAILED, NOT_RUN, OK, LoadPoint, LoadPointReply, LoadShape, Phases, RequestRecord, ServerConfig, Workload,
)
from mpibench.stats import quantile, quantile_ci_ranks
from mpibench.store.hdf5 import Results
from mpibench.store.schema import LOAD_POINT_COLUMNS, REQUEST_COLUMNS, TIMELINE_COLUMNS

S = 1_000_000_000  # ns
NONE = {}  # no SLOs


def ns(seconds: float) -> int:
    return round(seconds * S)


def record(i, intended, queue=0.0, ttft=0.1, gap=0.05, tokens=4, status=OK, lag=0.0, user=-1, error=""):
    """A request meant to start at `intended` s: dispatched `lag` s late, admitted after `queue` s, its first
    token `ttft` s after admission, then a token every `gap` s; it ends with its last token."""
    if status == NOT_RUN:
        return RequestRecord(i, user, -1, "", "steady", status, ns(intended), ns(intended + lag))
    admit = intended + queue
    times = tuple(ns(admit + ttft + k * gap) for k in range(tokens)) if status == OK else ()
    return RequestRecord(i, user, 0, "", "steady", status, ns(intended), ns(intended + lag), ns(admit),
                         times[0] if times else -1, times[-1] if times else ns(admit + 0.01), 8, len(times), error,
                         times)


def load_point(mode="open", rate=40.0, users=0, duration=10.0, warmup=2.0, cooldown=2.0, index=0,
               server=ServerConfig()):
    return LoadPoint(index, server, LoadShape(mode, users=users, rate=rate), Workload("fixed", prompt_tokens=8,
                     gen_tokens=4), Phases(0.0, warmup, duration, cooldown, 5.0), "m", "/m", "chat", 256, 1, (0, 1), 2)


def steady(rate=40.0, until=14.0, **kw):
    """Requests arriving every 1/rate s from 0 to `until` (every one alike)."""
    return [record(i, i / rate, **kw) for i in range(round(until * rate))]


def reply(records, ended=None, **kw):
    ended = max(r.end_ns for r in records) if ended is None else ended
    return LoadPointReply(0, tuple(records), "h", 1.7e9, ended, 0.05, **kw)


def test_request_rows_derive_their_seconds_from_the_intended_start():
    r = RequestRecord(3, 1, 0, "pi", "steady", OK, ns(1.0), ns(1.0002), ns(1.5), ns(1.7), ns(2.0), 12, 3, "",
                      (ns(1.7), ns(1.8), ns(2.0)))
    row = request_row(7, r)
    assert set(row) == {c for c, _ in REQUEST_COLUMNS} | {"token_ns"} and row["point"] == 7
    assert row["ttft_s"] == pytest.approx(0.7) and row["e2e_s"] == pytest.approx(1.0)
    assert row["queue_s"] == pytest.approx(0.5) and row["service_ttft_s"] == pytest.approx(0.2)
    assert row["tpot_s"] == pytest.approx(0.15) and row["itl_median_s"] == pytest.approx(0.15)
    assert row["dispatch_lag_s"] == pytest.approx(0.0002) and row["token_ns"] == r.token_ns
    failed = request_row(7, record(4, 1.0, queue=0.5, status=FAILED))
    assert all(math.isnan(failed[c]) for c in ("ttft_s", "e2e_s", "service_ttft_s", "tpot_s", "itl_median_s"))
    assert failed["queue_s"] == pytest.approx(0.5)
    never = request_row(7, record(5, 1.0, status=NOT_RUN))
    assert math.isnan(never["queue_s"]) and never["dispatch_lag_s"] == 0


def _coverage(n, q, low, high):
    """Exact P(low <= B < high), B ~ Binomial(n, q), in fractions."""
    q = Fraction(q).limit_denominator(1000)
    a, b = q.numerator, q.denominator
    return float(Fraction(sum(math.comb(n, i) * a**i * (b - a) ** (n - i) for i in range(low, high)), b**n))


def _tail_below(n, q, k):
    return _coverage(n, q, 0, k)


def _tail_above(n, q, k):
    return _coverage(n, q, k, n + 1)


@pytest.mark.parametrize("q", [0.5, 0.9, 0.95, 0.99])
@pytest.mark.parametrize("n", [1, 5, 20, 59, 100, 298, 299, 300, 400, 1500])  # 1500: the tails are windowed
def test_quantile_interval_ranks_against_the_exact_binomial(n, q):
    low, high, coverage = quantile_ci_ranks(n, q)
    assert coverage == pytest.approx(_coverage(n, q, low, high), abs=1e-12)
    below, above = _tail_below(n, q, low), _tail_above(n, q, high)
    if (low, high) == (1, n) and coverage < 0.95:  # no pair reaches 95 %: even the extremes leave more out
        assert _tail_below(n, q, 1) + _tail_above(n, q, n) > 0.05
        return
    assert coverage >= 0.95
    if _tail_below(n, q, 1) <= 0.025 and _tail_above(n, q, n) <= 0.025:  # both sides can have 2.5 %
        assert below <= 0.025 and above <= 0.025
        assert low == n or _tail_below(n, q, low + 1) > 0.025  # no narrower lower rank keeps the bound
        assert high == 1 or _tail_above(n, q, high - 1) > 0.025
    else:  # one side is the sample's extreme; the other takes what is left of 5 %
        assert high == n or low == 1
        assert below + above <= 0.05


def test_a_p99_bound_exists_from_299_samples_on():
    assert quantile_ci_ranks(298, 0.99)[2] < 0.95 <= quantile_ci_ranks(299, 0.99)[2]
    assert MIN_P99_COMPLETIONS >= 299


def test_quantile_is_the_nearest_rank_with_its_order_statistics():
    values = random.Random(3).sample(range(10_000), 500)
    ordered = sorted(values)
    for q in (0.5, 0.9, 0.95, 0.99):
        found = quantile(values, q)
        low, high, _ = quantile_ci_ranks(500, q)
        assert found.value == ordered[math.ceil(q * 500) - 1]
        assert (found.low, found.high) == (ordered[low - 1], ordered[high - 1])
        assert found.low <= found.value <= found.high
    few = quantile([3.0, 1.0, 2.0], 0.9)
    assert few.value == 3.0 and math.isnan(few.low) and math.isnan(few.high) and few.level < 0.95
    assert math.isnan(quantile([], 0.5).value)


def test_the_p90_interval_covers_the_true_p90_at_least_95_percent_of_the_time():
    rng = random.Random(11)
    hits = sum(q.low <= 0.9 <= q.high for q in (quantile([rng.random() for _ in range(60)], 0.9)
                                                 for _ in range(2000)))
    assert hits / 2000 >= 0.94  # nominal >= 95 %; 2000 draws leave about half a point of noise


def test_a_steady_point_gives_known_rates_latencies_and_littles_law():
    point = load_point()
    summary = summarise(point, reply(steady()), NONE)
    row = summary.point
    assert set(row) == {c for c, _ in LOAD_POINT_COLUMNS}
    assert row["window_s"] == 10 and row["requests"] == row["completed"] == 400 and row["failed"] == 0
    assert row["offered_rps"] == 40 and row["arrival_rps"] == row["achieved_rps"] == row["completed_rps"] == 40
    assert row["output_tok_s"] == pytest.approx(160)  # 400 requests x 4 tokens, all within the window
    assert row["total_tok_s"] == pytest.approx(160 + 40 * 8)
    assert row["ttft_p50_s"] == pytest.approx(0.1) and row["ttft_p99_s"] == pytest.approx(0.1)
    assert row["e2e_p99_s"] == pytest.approx(0.25) and row["tpot_p50_s"] == pytest.approx(0.05)
    assert row["itl_p99_s"] == pytest.approx(0.05) and row["queue_p99_s"] == 0
    assert row["mean_concurrency"] == pytest.approx(40 * 0.25) and row["littles_error"] == pytest.approx(0, abs=1e-9)
    assert row["stable"] == 1 and row["valid"] == 1 and row["invalid_reasons"] == ""
    assert math.isnan(row["apdex"]) and row["goodput_share"] == 1 and row["goodput_rps"] == 40
    assert len(summary.requests) == 14 * 40 and {r["phase"] for r in summary.requests} == {"steady"}


def test_latency_percentiles_and_intervals_match_brute_force():
    rng = random.Random(5)
    records = [record(i, 2 + i / 40, queue=rng.uniform(0, 0.02), ttft=rng.uniform(0.05, 0.5),
                      gap=rng.uniform(0.01, 0.03)) for i in range(400)]
    row = summarise(load_point(), reply(records), NONE).point
    rows = [request_row(0, r) for r in records]
    for metric, values in (("ttft", [r["ttft_s"] for r in rows]), ("queue", [r["queue_s"] for r in rows]),
                           ("itl", [(b - a) / S for r in records for a, b in zip(r.token_ns, r.token_ns[1:])])):
        ordered = sorted(values)
        for name, q in (("p50", 0.5), ("p90", 0.9), ("p99", 0.99)):
            low, high, _ = quantile_ci_ranks(len(ordered), q)
            assert row[f"{metric}_{name}_s"] == ordered[math.ceil(q * len(ordered)) - 1]
            assert (row[f"{metric}_{name}_lo_s"], row[f"{metric}_{name}_hi_s"]) == (ordered[low - 1],
                                                                                      ordered[high - 1])


def test_mean_concurrency_is_the_time_average_and_littles_law_holds_on_a_steady_queue():
    # one request a second, each served for 2.5 s after waiting 0.5 s: 3 s in the system, so 3 on average
    records = [record(i, float(i), queue=0.5, ttft=1.0, gap=0.5, tokens=4) for i in range(20)]
    row = summarise(load_point(rate=1.0, warmup=4.0, duration=10.0), reply(records), NONE).point
    assert row["mean_concurrency"] == pytest.approx(3.0) and row["littles_concurrency"] == pytest.approx(3.0)
    # brute force: the requests in the system sampled every millisecond of the window
    sampled = sum(sum(r.intended_ns <= t < r.end_ns for r in records) for t in range(4 * S, 14 * S, S // 1000))
    assert row["mean_concurrency"] == pytest.approx(sampled / 10_000, rel=1e-3)


def test_goodput_counts_failed_and_unrun_requests_as_misses():
    records = ([record(i, 2 + i / 40, ttft=0.1) for i in range(300)] + [record(300 + i, 2.0, ttft=0.3)
                                                                        for i in range(60)]
               + [record(360 + i, 3.0, status=FAILED) for i in range(30)]
               + [record(390 + i, 3.0, status=NOT_RUN) for i in range(10)])
    row = summarise(load_point(), reply(records, ended=ns(16)), {"ttft": 0.2, "tpot": None}).point
    assert (row["requests"], row["completed"], row["failed"], row["not_run"]) == (400, 360, 30, 10)
    assert row["goodput_rps"] == pytest.approx(30) and row["goodput_share"] == pytest.approx(300 / 400)
    tight = summarise(load_point(), reply(records, ended=ns(16)), {"ttft": 0.2, "e2e": 0.2}).point
    assert tight["goodput_rps"] == 0  # every ok request takes 0.25 s or more end to end
    tpot = summarise(load_point(), reply(records, ended=ns(16)), {"tpot": 0.04}).point
    assert tpot["goodput_rps"] == 0 and tpot["slo_tpot_s"] == 0.04 and math.isnan(tpot["slo_ttft_s"])


def test_apdex_on_ttft():
    rows = [request_row(0, r) for r in (record(0, 0, ttft=0.1), record(1, 0, ttft=0.5), record(2, 0, ttft=0.9),
                                        record(3, 0, status=FAILED))]
    assert apdex(rows, 0.2) == pytest.approx((1 + 0.5) / 4)  # satisfied, tolerating (<= 0.8), two frustrated
    assert math.isnan(apdex(rows, math.nan))
    point = summarise(load_point(), reply(steady()), {"ttft": 0.05}).point
    assert point["apdex"] == pytest.approx(0.5) and point["apdex_t_s"] == 0.05  # TTFT 0.1: all tolerating


def test_timeline_bins_count_events_and_the_queue_at_each_bins_end():
    records = [record(0, 0.2, queue=0.5, ttft=0.2, gap=0.6, tokens=2),  # admitted 0.7, tokens 0.9 1.5, ends 1.5
               record(1, 0.5, queue=1.8, ttft=0.1, tokens=1),  # admitted 2.3, token and end 2.4
               record(2, 1.2, status=NOT_RUN)]
    bins = timeline_rows(4, [request_row(4, r) for r in records], ns(3.5))
    assert [set(b) for b in bins] == [{c for c, _ in TIMELINE_COLUMNS}] * 4 and bins[0]["point"] == 4
    assert [b["arrived"] for b in bins] == [2, 1, 0, 0] and [b["admitted"] for b in bins] == [1, 0, 1, 0]
    assert [b["completed"] for b in bins] == [0, 1, 1, 0] and [b["output_tokens"] for b in bins] == [1, 1, 1, 0]
    assert [b["in_system"] for b in bins] == [2, 2, 1, 0]  # the unrun one stays until the point's end, 3.5 s
    assert [b["queued"] for b in bins] == [1, 2, 1, 0]


def test_a_growing_queue_is_unstable_and_a_flat_one_stable():
    # two arrivals a second, one served a second: the queue grows by one a second
    records = [record(i, i / 2, queue=i - i / 2, ttft=0.5, gap=0.25, tokens=3) for i in range(40)]
    row = summarise(load_point(rate=2.0), reply(records), NONE).point
    assert row["queue_slope"] == pytest.approx(1.0, rel=0.1) and row["stable"] == 0
    assert summarise(load_point(rate=2.0), reply(steady(rate=2.0)), NONE).point["queue_slope"] == 0
    assert is_stable(0.0, 10, 20) and is_stable(0.1, 10, 20) and not is_stable(0.2, 10, 20)  # 1 request at most
    assert is_stable(1.0, 10, 400) and not is_stable(2.1, 10, 400)  # 5 % of 400 = 20 requests
    assert not is_stable(math.nan, 1, 20)


def test_each_validity_rule_says_why():
    short = summarise(load_point(), reply(steady(until=9.0), stopped_ns=ns(9)), NONE).point  # runners died at 9 s
    assert short["valid"] == 0 and "steady window 7 s, shorter than the 10 s asked" in short["invalid_reasons"]
    assert short["window_s"] == 7 and short["completed_rps"] == 40
    early = summarise(load_point(rate=1.0), reply([record(i, 2.0 + i, ttft=0.1) for i in range(9)]), NONE).point
    assert early["window_s"] == 10 and "shorter" not in early["invalid_reasons"]  # its last request ended at 10.35 s
    few = summarise(load_point(rate=20.0), reply(steady(rate=20.0)), NONE).point  # 200 completions in the window
    assert few["valid"] == 0 and "200 completions, fewer than the 300" in few["invalid_reasons"]
    assert all(math.isnan(few[f"{m}_p99{e}_s"]) for m in ("ttft", "tpot", "itl", "e2e", "queue")
               for e in ("", "_lo", "_hi"))
    assert not math.isnan(few["ttft_p95_s"])
    lagging = summarise(load_point(), reply(steady(lag=0.002)), NONE).point
    assert lagging["invalid_reasons"] == "p99 dispatch lag 2 ms, over 1 ms"
    assert lagging["dispatch_lag_p99_s"] == pytest.approx(0.002)
    behind = summarise(load_point(), reply(steady(lag=0.5)), NONE).point  # the window's last 20 go out after it
    assert behind["achieved_rps"] == pytest.approx(38) and "not within 1 % of the 40/s" in behind["invalid_reasons"]
    closed = summarise(load_point(mode="closed", users=4, rate=0.0), reply(steady(lag=0.5)), NONE).point
    assert "not within" not in closed["invalid_reasons"] and math.isnan(closed["offered_rps"])
    broken = summarise(load_point(), LoadPointReply(0, error="runner 0 died: SIGKILL"), NONE).point
    assert broken["valid"] == 0 and broken["stable"] == 0 and broken["invalid_reasons"].startswith(
        "did not run: runner 0 died: SIGKILL; steady window 0 s")


def _knee_row(point, server="P1xS1xT1", achieved=1.0, stable=1, valid=1, share=1.0):
    return {"point": point, "model": "m", "workload": "w", "server": server, "kv_unified": 0, "achieved_rps": achieved,
            "stable": stable, "valid": valid, "goodput_share": share, "knee": 0}


def test_the_knee_is_each_configurations_fastest_stable_valid_point_with_95_percent_goodput():
    rows = [_knee_row(0, achieved=1), _knee_row(1, achieved=2), _knee_row(2, achieved=3, share=0.94),
            _knee_row(3, achieved=4, stable=0), _knee_row(4, achieved=5, valid=0),
            _knee_row(5, "P1xS4xT1", achieved=1.5), _knee_row(6, "P1xS4xT1", achieved=0.5),
            _knee_row(7, "P2xS1xT1", share=math.nan)]
    assert [r["knee"] for r in mark_knees(rows)] == [0, 1, 0, 0, 0, 1, 0, 0]
    assert all(r["knee"] == 0 for r in rows)  # the rows given are left as they were


@dataclass(frozen=True)
class SweepConfig:
    """The two things a sweep asks of the load configuration (load/config.py's LoadConfig has them)."""

    sweep_rates: int = 3

    def open_shape(self, rate: float) -> LoadShape:
        return LoadShape("open", rate=rate, arrivals="gamma", gamma_shape=2.0, max_concurrency=16)


def test_the_sweep_goes_synchronous_saturated_then_rates_between_and_stops_on_a_growing_queue():
    server, config = ServerConfig(partitions=2, slots=4, threads=1), SweepConfig()
    done = []
    assert next_sweep_shape(config, server, done) == LoadShape("closed", users=1)
    done.append({"mode": "closed", "completed_rps": 1.0, "stable": 1})
    assert next_sweep_shape(config, server, done) == LoadShape("closed", users=SATURATION_USERS_PER_SLOT * 8)
    done.append({"mode": "closed", "completed_rps": 4.0, "stable": 1})
    planned = []
    while (shape := next_sweep_shape(config, server, done)) is not None:
        planned.append(shape)
        done.append({"mode": "open", "completed_rps": shape.rate, "stable": 1})
    assert planned == [config.open_shape(rate) for rate in (2.0, 3.0, 4.0)]
    done[3]["stable"] = 0  # the first rate's queue kept growing: the next, higher rates are not tried
    assert next_sweep_shape(config, server, done[:4]) is None
    assert sweep_rates(2.0, 2.0, 3) == [] and sweep_rates(0.0, 3.0, 3) == [] and sweep_rates(math.nan, 3.0, 3) == []
    flat = [{"mode": "closed", "completed_rps": 2.0, "stable": 1},
            {"mode": "closed", "completed_rps": 1.9, "stable": 1}]  # concurrency gained nothing: no rates between
    assert next_sweep_shape(config, server, flat) is None


def test_the_show_table_marks_the_knee_and_prints_the_rules_per_point():
    good = summarise(load_point(index=0), reply(steady()), {"ttft": 0.5}).point
    few = summarise(load_point(index=1, rate=20.0), reply(steady(rate=20.0)), {"ttft": 0.5}).point
    text = point_table(Results({}, [], [], [], [], [], load_points=mark_knees([good, few])))
    lines = text.splitlines()
    assert lines[0].split()[:3] == ["point", "server", "load"]
    first, second = lines[2], lines[3]
    assert first.startswith("0") and "40/s poisson" in first and "400/400" in first and first.rstrip().endswith("*")
    assert second.startswith("1") and not second.rstrip().endswith("*") and "100.0/-" in second  # no p99
    assert "TTFT <= 500.0 ms" in text
    assert "point 0 (P1xS1xT1, 40/s poisson): valid" in text
    assert "point 1 (P1xS1xT1, 20/s poisson): invalid: 200 completions, fewer than the 300" in text
