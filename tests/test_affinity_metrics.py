import math

import pytest

from mpibench.affinity import format_cpu_list, parse_cpu_list, physical_first, runner_environment
from mpibench.metrics import latency


def test_cpu_list_round_trip():
    assert parse_cpu_list("0-3,8,10-11") == (0, 1, 2, 3, 8, 10, 11)
    assert format_cpu_list((11, 0, 1, 2, 3, 8, 10)) == "0-3,8,10-11"
    assert format_cpu_list(()) == ""
    with pytest.raises(ValueError):
        parse_cpu_list("0-a")


def test_physical_cores_come_before_smt_siblings():
    siblings = {0: (0, 4), 4: (0, 4), 1: (1, 5), 5: (1, 5), 2: (2, 6), 6: (2, 6)}
    assert physical_first([0, 1, 2, 4, 5, 6], siblings) == (0, 1, 2, 4, 5, 6)
    assert physical_first([4, 5, 2], siblings) == (2, 4, 5)  # 4 and 5 alone stand for their cores


def test_runner_environment_pins_openmp():
    env = runner_environment((2, 3), {"PATH": "/bin"})
    assert env["OMP_NUM_THREADS"] == "2" and env["OMP_PLACES"] == "{2},{3}"
    assert env["OMP_PROC_BIND"] == "close" and env["PATH"] == "/bin"


def test_latency_metrics_follow_their_definitions():
    ms = 1_000_000
    m = latency([100 * ms, 110 * ms, 130 * ms, 140 * ms], end_ns=150 * ms, prompt_tokens=50)
    assert m.ttft_s == pytest.approx(0.1)
    assert m.prefill_tok_s == pytest.approx(500)
    assert m.decode_tok_s == pytest.approx(3 / 0.04)
    assert m.tpot_s == pytest.approx((0.15 - 0.1) / 3)
    assert m.itl_median_s == pytest.approx(0.01) and m.itl_max_s == pytest.approx(0.02)
    assert m.e2e_s == pytest.approx(0.15)


def test_latency_without_enough_tokens_is_nan_not_a_guess():
    assert math.isnan(latency([], 5, 3).ttft_s)
    one = latency([2_000_000], 3_000_000, 4)
    assert one.ttft_s == pytest.approx(0.002) and math.isnan(one.decode_tok_s)
