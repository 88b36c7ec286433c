"""The bench kind: llama-bench's pp/tg tests, configured like llama-bench and run for real under mpiexec."""

import math

import pytest

from helpers import mpibench
from mpibench.config import ConfigError, bench_tests, build_config, warmup_runs
from mpibench.store.hdf5 import read_results
from mpibench.tasks import expand


def test_bench_config_gives_llama_bench_tests_and_a_warmup():
    config = build_config("", {"kind": "bench", "n_prompt": "128,512", "n_gen": "0"})
    assert bench_tests(config) == ("pp128", "pp512") and warmup_runs(config) == 1
    assert bench_tests(build_config("kind = 'bench'")) == ("pp512", "tg128")
    assert warmup_runs(build_config("")) == 0  # query sweeps have no warmup unless asked


def test_warmups_come_first_in_each_group_with_their_own_ids():
    tasks = expand(build_config("", {"kind": "bench", "n_prompt": "64", "n_gen": "16", "repetitions": 2}), (1, 2))
    assert [(t.prompt_id, t.repetition, t.warmup) for t in tasks[:6]] == [
        ("pp64", -1, True), ("tg16", -1, True), ("pp64", 0, False), ("tg16", 0, False),
        ("pp64", 1, False), ("tg16", 1, False)]
    assert len({t.id for t in tasks}) == len(tasks) == 12 and all(t.kind == "bench" for t in tasks)


@pytest.mark.parametrize("overrides, message", [
    ({"kind": "bnch"}, "Did you mean 'bench'"),
    ({"kind": "bench", "n_prompt": "0", "n_gen": "0"}, "needs a test"),
    ({"kind": "bench", "n_gen": "-1"}, "not a number"),
    ({"warmup": -1}, "warmup must be a non-negative integer"),
])
def test_bad_bench_settings_are_explained(overrides, message):
    with pytest.raises(ConfigError) as error:
        build_config("", overrides)
    assert message in str(error.value)


@pytest.mark.integration
def test_bench_runs_pp_and_tg_under_mpiexec(tmp_path):
    out = tmp_path / "run"
    proc = mpibench(2, "bench", "-m", "smollm2-135m", "-p", "32", "-n", "8", "-r", "2", "-t", "1,2", "--out", str(out),
                    "--no-plots")
    assert proc.returncode == 0, proc.stderr
    rows = read_results(out / "results.h5").results
    assert len(rows) == 2 * 2 * 3 and all(r["status"] == "ok" and r["kind"] == "bench" for r in rows)
    assert sum(r["warmup"] for r in rows) == 4
    for row in rows:
        if row["prompt_id"] == "pp32":
            assert row["llama_prompt_n"] == 32 and row["prefill_tok_s"] == pytest.approx(32 / row["e2e_s"])
            assert math.isnan(row["decode_tok_s"])
        else:
            assert row["llama_eval_n"] == 8 and len(row["token_ns"]) == 8
            assert row["decode_tok_s"] == pytest.approx(8 / row["e2e_s"]) and math.isnan(row["prefill_tok_s"])
        assert row["llama_prompt_ms"] + row["llama_eval_ms"] <= 1000 * row["e2e_s"] * 1.01
    (model,) = read_results(out / "results.h5").models
    assert model["llama_desc"].startswith("llama ") and "Q4_1" in model["llama_desc"]
    assert 0 < model["llama_bytes"] < model["size_bytes"]  # tensors only, as llama-bench counts
    export = mpibench(None, "export", str(out / "results.h5"), "--format", "llama-bench-csv", timeout=120)
    assert export.returncode == 0, export.stderr
    assert f'"{model["llama_desc"]}","{model["llama_bytes"]}"' in export.stdout
