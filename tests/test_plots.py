"""The plots of synthetic results files: which files are drawn, which are skipped and why, what each shows."""

import itertools
import math

import pytest

from analysis.figures import ci_note, dodge, slug
from analysis.plots import draw_all, figures, plotted
from helpers import assert_pngs, header
from mpibench.stats import describe
from mpibench.store.hdf5 import ResultsFileError, read_results, write_results
from mpibench.store.schema import empty_result
from mpibench.store.scores import Score, ScoreBatch, answer_sha, replace_batch
from mpibench.summary import cells

MODELS = {"small-1": 135_000_000, "big/2": 1_700_000_000}


def run_file(tmp_path, models=("small-1", "big/2"), threads=(1, 2), prompts=("pi", "weather"), reps=3, kind="query",
             probed=True):
    """A results file of every (model, prompt, threads, repetition), times halving with threads; with `probed`, a
    bandwidth probe of host h at each thread count (10 GB/s a thread) and the models' KV shapes."""
    rows = []
    for i, (model, prompt, t, rep) in enumerate(itertools.product(models, prompts, threads, range(reps))):
        e2e = (1 + models.index(model)) * (1 + 0.1 * rep) / t
        rates = ({"prefill_tok_s": 64 / e2e, "decode_tok_s": math.nan} if prompt.startswith("pp") else
                 {"prefill_tok_s": math.nan, "decode_tok_s": 8 / e2e} if kind == "bench" else
                 {"prefill_tok_s": 100 / e2e, "decode_tok_s": 8 / e2e})
        ttft = math.nan if kind == "bench" else e2e / 4
        rows.append(empty_result(index=i, task_id=f"t{i}", kind=kind, model=model, prompt_id=prompt, threads=t,
                                 repetition=rep, status="ok", e2e_s=e2e, ttft_s=ttft, generated_tokens=8,
                                 hostname="h", prompt_tokens=10, model_bytes=MODELS[model] // 2,
                                 answer=f"answer {i}", token_ns=[1, 2], **rates))
    probes = [{"hostname": "h", "threads": t, "cores": f"0-{t - 1}", "gb_per_s": 10.0 * t, "repeats": 5, "cv": 0.01,
               "method": "numpy-sum-f64", "working_set_bytes": 2**28, "probed_unix": 0.0} for t in threads]
    shape = {"n_layers": 2, "n_kv_heads": 2, "key_length": 64, "value_length": 64} if probed else {}
    head = dict(header(total=len(rows)), launches=[{"workers": [], "bandwidth": probes if probed else []}],
                models=[dict(header()["models"][0], name=m, path=f"/{i}", parameters=MODELS[m], **shape)
                        for i, m in enumerate(models)])
    path = tmp_path / "results.h5"
    write_results(path, head, rows)
    return path


def names(drawn) -> list[str]:
    return sorted(p.name for p in drawn.paths)


def test_a_two_model_two_thread_query_run_draws_every_plot(tmp_path):
    drawn = figures(run_file(tmp_path), tmp_path / "plots")
    assert names(drawn) == ["decode_roofline.png", "decode_vs_threads.png", "prefill_vs_threads.png",
                            "runtime_vs_model_size.png", "runtime_vs_threads.png", "scaling_big-2.png",
                            "scaling_small-1.png", "speedup_efficiency.png", "ttft_vs_threads.png"]
    assert drawn.skipped == ["score plots: not scored (mpibench score --scorer rubric)"]
    assert_pngs(drawn.paths)
    assert draw_all(tmp_path / "results.h5", tmp_path / "again") == [tmp_path / "again" / p.name for p in drawn.paths]


def test_one_model_skips_the_size_plot_and_says_why(tmp_path):
    drawn = figures(run_file(tmp_path, models=("small-1",)), tmp_path / "plots")
    assert "runtime_vs_model_size.png" not in names(drawn) and "scaling_small-1.png" in names(drawn)
    assert "runtime_vs_model_size: one model only (small-1); nothing to compare" in drawn.skipped


def test_one_thread_count_skips_every_plot_against_threads(tmp_path):
    drawn = figures(run_file(tmp_path, threads=(4,)), tmp_path / "plots")
    assert names(drawn) == ["decode_roofline.png", "runtime_vs_model_size.png"]  # a bound informs at one count too
    reason = "one thread count only (4); nothing to compare"
    for name in ("runtime_vs_threads", "decode_vs_threads", "prefill_vs_threads", "ttft_vs_threads",
                 "speedup_efficiency", "scaling_small-1", "scaling_big-2"):
        assert f"{name}: {reason}" in drawn.skipped


def test_a_bench_run_shows_tg_tests_in_decode_plots_pp_tests_in_prefill_plots_and_no_ttft(tmp_path):
    path = run_file(tmp_path, models=("small-1",), prompts=("pp64", "tg8"), kind="bench")
    all_cells = cells(read_results(path).results)
    assert {c.prompt_id for c in plotted(all_cells, "decode_tok_s")} == {"tg8"}
    assert {c.prompt_id for c in plotted(all_cells, "prefill_tok_s")} == {"pp64"}
    assert {c.prompt_id for c in plotted(all_cells, "e2e_s")} == {"pp64", "tg8"}
    assert plotted(all_cells, "ttft_s") == []
    drawn = figures(path, tmp_path / "plots")
    assert "ttft_vs_threads: no successful cell measured TTFT s" in drawn.skipped
    assert "decode_vs_threads.png" in names(drawn) and "prefill_vs_threads.png" in names(drawn)


def test_a_scored_run_draws_the_quality_plots_and_scores_under_the_scaling_runtime(tmp_path):
    path = run_file(tmp_path)
    results = read_results(path).results
    batch = ScoreBatch("rubric", "v1", "now", {}, tuple(Score(r["task_id"], answer_sha(r["answer"]), 4.0, "ok")
                                                        for r in results))
    replace_batch(path, batch, {r["task_id"]: r["answer"] for r in results}, [])
    drawn = figures(path, tmp_path / "plots")
    assert {"score_vs_model_size_rubric.png", "score_vs_threads_rubric.png", "quality_vs_cost_rubric.png",
            "scaling_small-1.png"} <= set(names(drawn))
    assert drawn.skipped == []
    assert_pngs(drawn.paths)


def test_the_roofline_plot_needs_a_bandwidth_probe_and_says_so(tmp_path):
    drawn = figures(run_file(tmp_path, probed=False), tmp_path / "plots")
    assert "decode_roofline.png" not in names(drawn)
    assert "decode_roofline: no bandwidth probe in this file (mpibench measures one at the start of every run since " \
           "schema 5)" in drawn.skipped
    bench = figures(run_file(tmp_path, models=("small-1",), prompts=("pp64",), kind="bench"), tmp_path / "pp")
    assert "decode_roofline: no successful cell measured decode tok/s" in bench.skipped


def test_nothing_successful_is_an_error(tmp_path):
    path = tmp_path / "results.h5"
    write_results(path, header(), [empty_result(index=0, task_id="t0", model="m", prompt_id="pi", threads=1,
                                                status="failed", answer="", token_ns=[])])
    with pytest.raises(ResultsFileError, match="no successful task"):
        draw_all(path, tmp_path / "plots")


def test_helpers_dodge_curves_apart_and_say_where_bars_are_min_max():
    assert [dodge(i, 3, [1, 2, 4]) for i in range(3)] == pytest.approx([-0.06, 0.0, 0.06])
    assert ci_note([describe(range(10))]) == "bars: 95 % CI of the median"
    assert ci_note([describe([1, 2, 3]), describe(range(10))]).endswith("n<6: min-max, covering less (75 % at n=3)")
    assert ci_note([describe([1.0])]) == "bars: 95 % CI of the median; n=1: no bar"
    assert slug("judge:big/2 b") == "judge-big-2-b"


def test_scores_of_a_model_that_ran_with_two_engines_are_kept_apart_by_series(tmp_path):
    from analysis.quality import scored_tasks

    path = run_file(tmp_path, models=("small-1",))
    results = read_results(path).results
    for r in results:  # repetition 0 on one engine, the others on another
        r.update(engine_library_sha256=("aa" if r["repetition"] == 0 else "bb") * 32, engine_weight_buffers="CPU")
    write_results(path, dict(header(total=len(results)), models=read_results(path).models), results)
    batch = ScoreBatch("rubric", "v1", "now", {}, tuple(Score(r["task_id"], answer_sha(r["answer"]), 5.0, "ok")
                                                        for r in results))
    replace_batch(path, batch, {r["task_id"]: r["answer"] for r in results}, [])
    assert len({r["series"] for r in scored_tasks(read_results(path), "rubric")}) == 2
    drawn = figures(path, tmp_path / "plots")
    assert {"scaling_small-1.png", "score_vs_threads_rubric.png"} <= set(names(drawn))
    assert_pngs(drawn.paths)
