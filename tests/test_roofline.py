import math

import pytest

from helpers import MODEL, header
from mpibench.memory import kv_cache_bytes
from mpibench.roofline import (bound_tok_s, bytes_per_token, mean_cached_positions,
                               probe_for, task_roofline)
from mpibench.store.hdf5 import read_results, write_results
from mpibench.store.schema import empty_result

LLAMA_7B = dict(MODEL, n_layers=32, n_kv_heads=32, key_length=128, value_length=128)
WEIGHTS = 3_825_065_984  # bytes of a llama 7B Q4_0's tensors


def probe_row(gb_per_s, threads=1, probed_unix=100.0, hostname="h"):
    return {"hostname": hostname, "threads": threads, "cores": "0", "gb_per_s": gb_per_s, "repeats": 5, "cv": 0.01,
            "method": "numpy-sum-f64", "working_set_bytes": 2**28, "probed_unix": probed_unix}


def decode_row(**kw):
    return empty_result(**{"task_id": "t0", "model": "m", "prompt_id": "pi", "threads": 1, "status": "ok",
                           "hostname": "h", "kind": "query", "prompt_tokens": 20, "generated_tokens": 11,
                           "decode_tok_s": 3.0, "model_bytes": WEIGHTS, "started_unix": 200.0, "answer": "",
                           "token_ns": [], **kw})


def test_a_hand_computed_7b_query():
    # f16 K and V: 32 layers x 32 KV heads x (128 + 128) x 2 bytes = 512 KiB a cached position
    kv = kv_cache_bytes(32, 32, 128, 128, 1)
    assert kv == 524_288
    # 20 prompt tokens, 11 generated: decode_tok_s times 10 steps at positions 20..29, reading 21..30 positions
    assert mean_cached_positions("query", 20, 11) == 25.5
    per_token = bytes_per_token(WEIGHTS, kv, 25.5)
    assert per_token == 3_825_065_984 + 524_288 * 25.5 == 3_838_435_328
    bound = bound_tok_s(20.0, per_token)
    assert bound == pytest.approx(20e9 / 3_838_435_328) and bound == pytest.approx(5.21046, abs=1e-5)
    columns = task_roofline(decode_row(), LLAMA_7B, [probe_row(20.0)])
    assert columns["bytes_per_token"] == 3_838_435_328
    assert columns["roofline_tok_s"] == pytest.approx(5.21046, abs=1e-5)
    assert columns["roofline_fraction"] == pytest.approx(3.0 / 5.21046, abs=1e-5)


def test_bench_tg_steps_start_at_its_prompt():
    # tg16 from an empty cache: 16 steps at positions 0..15, reading 1..16 cached positions
    assert mean_cached_positions("bench", 0, 16) == 8.5
    assert mean_cached_positions("bench", 4, 2) == 5.5  # positions 4 and 5: 5 and 6 cached
    assert math.isnan(mean_cached_positions("query", 10, 1))  # one token: no decode step
    assert math.isnan(mean_cached_positions("bench", 64, 0))  # a pp test


def test_unknown_shape_size_or_bandwidth_leave_nan():
    assert math.isnan(bytes_per_token(0, 524_288, 8.5))
    assert math.isnan(bytes_per_token(WEIGHTS, 0, 8.5))
    no_shape = task_roofline(decode_row(), MODEL, [probe_row(20.0)])  # a model row from before schema 5
    assert all(math.isnan(v) for v in no_shape.values())
    no_probe = task_roofline(decode_row(), LLAMA_7B, [probe_row(20.0, threads=2)])
    assert no_probe["bytes_per_token"] == 3_838_435_328 and math.isnan(no_probe["roofline_tok_s"])
    failed = task_roofline(decode_row(status="failed"), LLAMA_7B, [probe_row(20.0)])
    assert all(math.isnan(v) for v in failed.values())


def test_a_task_takes_the_latest_probe_before_it_started():
    rows = [probe_row(10.0, probed_unix=100.0), probe_row(30.0, probed_unix=300.0), probe_row(99.0, hostname="x")]
    assert probe_for(rows, "h", 1, 200.0)["gb_per_s"] == 10.0
    assert probe_for(rows, "h", 1, 400.0)["gb_per_s"] == 30.0
    assert probe_for(rows, "h", 1, 50.0)["gb_per_s"] == 10.0  # none before it: the earliest
    assert probe_for(rows, "h", 2, 200.0) is None


def test_results_file_stores_bandwidth_and_derives_the_roofline(tmp_path):
    path = tmp_path / "results.h5"
    run = header(total=1, models=[LLAMA_7B], launches=[{"workers": [], "bandwidth": [probe_row(20.0)]}])
    write_results(path, run, [decode_row(index=0)])
    results = read_results(path)
    assert results.bandwidth == [probe_row(20.0)]
    assert (results.models[0]["n_layers"], results.models[0]["n_kv_heads"]) == (32, 32)
    row = results.results[0]
    assert row["bytes_per_token"] == 3_838_435_328
    assert row["roofline_fraction"] == pytest.approx(3.0 / 5.21046, abs=1e-5)
