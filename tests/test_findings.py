import math

import pytest

from mpibench import findings
from mpibench.findings import (
    Point, answer_sentences, determinism_sentences, failure_sentences, groups, knee, pareto_front,
    pareto_sentences, scaling, scaling_sentence, score_sentences, size_steps,
)
from mpibench.store.hdf5 import Results
from mpibench.store.schema import empty_result
from mpibench.summary import cells

SPEED = {1: 1.0, 2: 1.8, 4: 3.0, 8: 3.2}  # a knee at 4: going to 8 gains only 7 %
MODELS = [dict(name="small", parameters=135_000_000), dict(name="big", parameters=1_700_000_000)]


def query(model, prompt, threads, e2e, repetition=0, answer="same", status="ok", **kw):
    task_id = f"{model}-{prompt}-{threads}-{repetition}"
    return empty_result(task_id=task_id, model=model, prompt_id=prompt, threads=threads, repetition=repetition,
                        e2e_s=e2e, status=status, answer=answer, kind="query", **kw)


def sweep(model="small", base=1.0, prompts=("p1", "p2"), speed=SPEED, reps=3):
    return [query(model, p, t, base / s * (1 + 0.01 * r), r) for p in prompts for t, s in speed.items()
            for r in range(reps)]


def rubric(records, value=lambda r: 5.0):
    return [dict(task_id=r["task_id"], scorer="rubric", score=value(r)) for r in records if r["status"] == "ok"]


def point(threads, speedup, base=1):
    return Point(threads, speedup, math.nan, math.nan, speedup * base / threads, 1)




def test_scaling_sums_median_times_over_the_prompts_measured_at_both_counts():
    records = sweep(prompts=("p1",)) + sweep(base=3.0, prompts=("p2",))
    records = [r for r in records if not (r["prompt_id"] == "p2" and r["threads"] == 8)]
    (group,) = groups(cells(records))
    points = {p.threads: p for p in scaling(group)}
    assert points[1].speedup == pytest.approx(1.0) and points[1].efficiency == pytest.approx(1.0)
    assert points[4].speedup == pytest.approx(3.0) and points[4].efficiency == pytest.approx(0.75)
    assert points[4].ci_low <= 3.0 <= points[4].ci_high and points[4].prompts == 2
    assert points[8].prompts == 1 and points[8].speedup == pytest.approx(3.2)


def test_thread_counts_sharing_no_prompt_with_the_fewest_are_left_out():
    records = sweep(prompts=("p1",), speed={1: 1.0, 2: 2.0}) + sweep(prompts=("p2",), speed={4: 1.0})
    (group,) = groups(cells(records))
    assert [p.threads for p in scaling(group)] == [1, 2]
    (apart,) = groups(cells(sweep(prompts=("p1",), speed={1: 1.0}) + sweep(prompts=("p2",), speed={4: 1.0})))
    assert scaling_sentence(apart) == ("small: its 2 queries share no prompt between 1 thread and the other counts; "
                                       "a speedup needs a second thread count (mpibench run --threads 1,2,4,8).")


def test_knee_where_doubling_gains_under_ten_percent():
    assert knee([point(1, 1.0), point(2, 1.8), point(4, 3.0), point(8, 3.2)]) == \
        "the knee is at 4 threads: going to 8 gains only 7 %"


def test_knee_where_efficiency_falls_under_half():
    assert knee([point(1, 1.0), point(2, 1.9), point(4, 3.4), point(8, 3.9), point(16, 7.5)]) == \
        "the knee is at 8 threads, where efficiency falls to 49 %"


def test_knee_can_be_the_fewest_threads():
    assert knee([point(1, 1.0), point(2, 1.05)]).startswith("the knee is at 1 thread: going to 2 gains only 5 %")


def test_no_knee_means_scaling_held_up_to_the_largest_count():
    text = knee([point(1, 1.0), point(2, 1.9), point(4, 3.5)])
    assert text.startswith("scaling held up to the largest count, 4 threads (efficiency 88 %")


def test_scaling_sentence_gives_speedup_interval_efficiency_and_knee():
    (group,) = groups(cells(sweep()))
    text = scaling_sentence(group)
    assert text.startswith("small: on its 2 queries (summed median e2e), 2 threads run 1.80x faster than 1 (95 % CI ")
    assert "efficiency 90 %; 4 threads 3.00x (95 % CI" in text and "), 75 %; 8 threads 3.20x" in text
    assert text.endswith("), 40 %; the knee is at 4 threads: going to 8 gains only 7 %.")


def test_scaling_sentence_without_repetitions_or_second_thread_count_says_what_to_run():
    (one,) = groups(cells(sweep(reps=1)))
    assert "no interval: fewer than 2 runs per cell, rerun with --repetitions 5" in scaling_sentence(one)
    (alone,) = groups(cells(sweep(speed={4: 1.0})))
    assert scaling_sentence(alone) == ("small: its 2 queries ran at 4 threads only; a speedup needs a second thread "
                                       "count (mpibench run --threads 1,2,4,8).")


def test_bench_tests_scale_one_sentence_each():
    records = [empty_result(kind="bench", model="small", prompt_id=test, threads=t, repetition=r, status="ok",
                            e2e_s=base / (t if test == "pp512" else min(t, 2)) * (1 + 0.01 * r))
               for test, base in (("pp512", 0.5), ("tg128", 1.0)) for t in (1, 2, 4) for r in range(3)]
    pp, tg = (scaling_sentence(g) for g in groups(cells(records)))
    assert pp.startswith("small: on bench test pp512 (median time), 2 threads run 2.00x faster than 1")
    assert pp.endswith("scaling held up to the largest count, 4 threads (efficiency 100 %, every doubling gained "
                       "10 % or more).")
    assert tg.endswith("the knee is at 2 threads: going to 4 gains nothing (0 %).")


def test_determinism_counts_identical_prompts_and_names_the_divergent_ones():
    records = sweep(reps=1)
    records = [dict(r, answer="other") if (r["prompt_id"], r["threads"]) == ("p2", 8) else r for r in records]
    records.append(query("small", "p2", 1, 1.0, repetition=-1, warmup=1, answer="warm"))  # warmups are not compared
    (text,) = determinism_sentences(records)
    assert text == ("small: greedy answers were byte-identical across 1, 2, 4, 8 threads for 1 of 2 prompts; they "
                    "diverged for p2 at 8 threads (first at character 0 of the 1-thread answer).")


def test_determinism_with_one_answer_a_prompt_says_what_is_missing():
    (text,) = determinism_sentences([query("small", "p1", 4, 1.0)])
    assert "each prompt has one answer only" in text


def test_scores_by_thread_count_or_the_command_to_score():
    records = sweep()
    assert score_sentences(records, []) == [
        "Scores across thread counts: not scored: run mpibench score <results.h5> --scorer rubric."]
    (text,) = score_sentences(records, rubric(records, lambda r: 6.0 if r["threads"] < 8 else 5.0))
    assert text == ("rubric mean score of small at 1, 2, 4, 8 threads: 6.0, 6.0, 6.0, 5.0 (6 answers each); "
                    "it moved by 1.0 across thread counts.")


def test_size_steps_cost_core_seconds_at_shared_threads_and_the_score_they_buy():
    records = sweep() + sweep("big", base=4.0, speed={2: 1.0, 4: 1.5})
    scores = rubric(records, lambda r: 7.0 if r["model"] == "big" else 4.5)
    (text,) = size_steps(records, MODELS, scores)
    assert text.startswith("small (135 M parameters) -> big (1.7 B parameters): each answer (mean of 2 prompts) "
                           "costs 7.20x the core-seconds at 2 threads (95 % CI ")
    assert "1.12 -> 8.08 core-s), and the rubric mean score goes 4.5 -> 7.0 (+2.5)." in text
    assert size_steps(sweep(), MODELS, []) == [
        "Model size: only small has query results; the comparison needs a second model "
        "(mpibench run --models small,<another model>)."]


def test_size_steps_unscored_say_the_command():
    (text,) = size_steps(sweep() + sweep("big", base=4.0), MODELS, [])
    assert "costs 4.00x the core-seconds at 1 thread" in text
    assert text.endswith("; not scored: run mpibench score <results.h5> --scorer rubric.")


def test_pareto_front_indices():
    assert pareto_front([(2.0, 5.0), (1.0, 4.0), (3.0, 4.0), (1.0, 4.0), (4.0, 9.0)]) == [1, 3, 0, 4]


def test_pareto_sentences_name_the_front_configurations():
    records = sweep(reps=1) + sweep("big", base=4.0, reps=1)
    scores = rubric(records, lambda r: 8.0 if r["model"] == "big" else 5.0)
    (text,) = pareto_sentences(records, scores)
    assert text == ("On the rubric quality-against-cost Pareto front (mean score against mean core-seconds per "
                    "scored answer): small at 1 thread (1 core-s, score 5.0), big at 1 thread (4 core-s, score "
                    "8.0); each of the other 6 configurations is matched or beaten on both by one of these.")
    assert pareto_sentences(records, []) == [
        "Quality against cost: not scored: run mpibench score <results.h5> --scorer rubric."]


def test_failures_are_counted_by_reason_and_missing_tasks_named():
    records = sweep(reps=1)
    records += [query("small", "p1", 8, math.nan, 5, status="timeout", error="timed out after 60 s; runner killed"),
                query("small", "p1", 8, math.nan, 6, status="failed", error="runner died: SIGSEGV"),
                query("small", "p2", 8, math.nan, 5, status="failed", error="runner died: SIGILL"),
                query("small", "p3", 1, math.nan, status="not_run", error="not run: no engine passed: AMX")]
    first, missing = failure_sentences(records, len(records) + 3)
    assert first == ("4 of 12 tasks did not succeed: 2 failed (runner died), 1 not_run (no engine passed), 1 timeout "
                     "(timed out after 60 s; runner killed); they are in no statistic (rerun them with mpibench run "
                     "--resume <run dir> --retry-failed).")
    assert missing == ("3 of the 15 planned tasks have no result (the run stopped or is still going): mpibench run "
                       "--resume <run dir> completes it.")
    assert failure_sentences(sweep(reps=1), 8) == ["All 8 recorded tasks succeeded."]
    assert failure_sentences([], 0) == ["No task has a result yet."]


def test_answer_sentences_of_a_scored_query_run():
    records = sweep() + sweep("big", base=4.0)
    results = Results({"total_tasks": len(records)}, [], [], MODELS, [], records, rubric(records), [])
    text = answer_sentences(results)
    assert [s.split(":")[0] for s in text[:4]] == ["big", "small", "big", "small"]
    assert any("Pareto front" in s for s in text) and text[-1] == f"All {len(records)} recorded tasks succeeded."
    assert not any("not scored" in s for s in text)


def test_answer_sentences_of_a_bench_run():
    records = [empty_result(kind="bench", model="small", prompt_id="tg128", threads=t, repetition=r, status="ok",
                            e2e_s=1.0 / t) for t in (1, 2) for r in range(2)]
    text = answer_sentences(Results({"total_tasks": 4}, [], [], MODELS, [], records))
    assert text[0].startswith("small: on bench test tg128")
    assert "bench runs produce no answers" in text[1]
    assert text[2] == ("Model size: only small has bench results; the comparison needs a second model "
                       "(mpibench bench -m small,<another model>).")
    assert not any("Pareto" in s or "not scored" in s for s in text)


def test_method_names_the_bootstrap():
    assert "percentile bootstrap" in findings.METHOD and "2000" in findings.METHOD


def test_a_model_with_two_engine_configurations_is_two_series():
    records = [dict(r, task_id=r["task_id"] + sha, engine_library_sha256=sha * 8) for sha in "ab" for r in sweep()]
    names = [g.series for g in groups(cells(records))]
    assert names == ["small [native CPU backend aaaaaaaa, weights -, extra buffers off]",
                     "small [native CPU backend bbbbbbbb, weights -, extra buffers off]"]
    (text,) = pareto_sentences(records, rubric(records))
    assert "small [native CPU backend aaaaaaaa, weights -, extra buffers off] at 1 thread" in text


def test_answer_sentences_of_a_mixed_run():
    bench = [empty_result(kind="bench", model="small", prompt_id="pp512", threads=t, repetition=r, status="ok",
                          e2e_s=1.0 / t) for t in (1, 2) for r in range(2)]
    text = answer_sentences(Results({"total_tasks": 30}, [], [], MODELS, [], bench + sweep(prompts=("p1",))))
    assert text[0].startswith("small: on its 1 query (summed median e2e)")
    assert text[1].startswith("small: on bench test pp512 (median time)")
    assert text[2].startswith("small: greedy answers were byte-identical across 1, 2, 4, 8 threads for 1 of 1 prompts")
    assert sum("Model size: only small" in s for s in text) == 2
    assert text[-2:] == ["All 16 recorded tasks succeeded.", "14 of the 30 planned tasks have no result (the run "
                         "stopped or is still going): mpibench run --resume <run dir> completes it."]


def test_roofline_sentences_state_the_fraction_and_prefill_against_the_bound():
    from mpibench.findings import roofline_sentences

    def bench(test, t, r, **metrics):
        return empty_result(kind="bench", model="small", prompt_id=test, threads=t, repetition=r, status="ok",
                            e2e_s=1.0, **metrics)

    records = [bench("tg16", t, r, decode_tok_s=decode, roofline_tok_s=bound, roofline_fraction=decode / bound,
                     bytes_per_token=2e8) for t, decode, bound in ((1, 50.0, 100.0), (2, 60.0, 150.0)) for r in range(2)]
    records += [bench("pp64", t, r, prefill_tok_s=pp) for t, pp in ((1, 200.0), (2, 300.0)) for r in range(2)]
    assert roofline_sentences(cells(records)) == [
        "small, tg16: decode reached 50 % of its memory roofline at 1 thread (50 of 100 tok/s: 20.0 GB/s read / 200 MB "
        "a token), 40 % at 2 threads (60 of 150 tok/s: 30.0 GB/s read / 200 MB a token).",
        "small, pp64: prefill is compute-bound (a batch reads the weights once for all its tokens), so it has no memory "
        "roofline, and no peak FLOP rate was measured: 200 tok/s at 1 thread (2x the decode roofline there), 300 tok/s "
        "at 2 threads (2x the decode roofline there).",
    ]
    unprobed = [dict(r, roofline_tok_s=math.nan, roofline_fraction=math.nan) for r in records]
    assert roofline_sentences(cells(unprobed))[0].startswith("Decode against its memory roofline: this file holds no "
                                                            "bandwidth probe")
