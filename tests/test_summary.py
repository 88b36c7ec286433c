import math

import pytest

from mpibench.store.schema import empty_result
from mpibench.summary import cells, format_table, report, speedups


def row(model, prompt, threads, e2e, status="ok", repetition=0, **kw):
    return empty_result(model=model, prompt_id=prompt, threads=threads, e2e_s=e2e, decode_tok_s=100 / e2e,
                        generated_tokens=100, status=status, repetition=repetition, kind="query", **kw)


def bench_row(test, threads, e2e, repetition, warmup=0):
    n = int(test[2:])
    rate = {"prefill_tok_s" if test.startswith("pp") else "decode_tok_s": n / e2e}
    return empty_result(kind="bench", model="m", prompt_id=test, threads=threads, e2e_s=e2e, status="ok",
                        repetition=repetition, warmup=warmup, **rate)


def test_cells_take_medians_of_successful_runs_only():
    records = [row("m", "pi", 1, 2.0), row("m", "pi", 1, 4.0), row("m", "pi", 1, 3.0),
               row("m", "pi", 1, 99.0, status="failed"), row("m", "pi", 2, 1.5)]
    one, two = cells(records)
    assert (one.threads, one.runs, one.failed, one.warmups, one.medians["e2e_s"]) == (1, 4, 1, 0, 3.0)
    assert one.stats["e2e_s"].n == 3 and one.stats["e2e_s"].max == 4.0
    assert speedups([one, two])[("m", "pi", 2)] == pytest.approx(2.0)
    table = format_table([one, two])
    assert "speedup" in table and "2.00" in table


def test_warmups_are_counted_apart_and_never_enter_a_statistic():
    records = [row("m", "pi", 1, 50.0, repetition=-1, warmup=1)] + [row("m", "pi", 1, 1.0 + i / 100, repetition=i)
                                                                    for i in range(5)]
    (cell,) = cells(records)
    assert (cell.runs, cell.warmups, cell.stats["e2e_s"].n, cell.stats["e2e_s"].max) == (5, 1, 5, 1.04)
    assert cell.outliers("e2e_s") == [] and "warning" not in report([cell])


def test_a_cell_with_no_success_has_nan_medians():
    (cell,) = cells([row("m", "pi", 1, 1.0, status="failed")])
    assert math.isnan(cell.medians["e2e_s"]) and cell.stats["e2e_s"].n == 0
    assert "-" in format_table([cell])


def test_bench_cells_report_the_test_throughput_as_llama_bench():
    records = [bench_row("tg32", 1, 0.5, -1, warmup=1)] + [bench_row("tg32", 1, 0.40 + i / 1000, i) for i in range(6)]
    records += [bench_row("pp64", 1, 0.10, i) for i in range(6)]
    pp, tg = cells(records)  # pp before tg, as llama-bench lists them
    assert (pp.prompt_id, pp.main_metric, pp.medians["prefill_tok_s"]) == ("pp64", "prefill_tok_s", 640.0)
    assert (tg.main_metric, tg.warmups, tg.stats["decode_tok_s"].n) == ("decode_tok_s", 1, 6)
    assert tg.stats["decode_tok_s"].ci_level > 0.95
    text = report([pp, tg])
    assert "bench tests" in text and "queries" not in text and "640.0" in text and "*" not in text


def test_report_warns_on_noisy_cells_and_names_outliers():
    steady = [row("m", "pi", 1, 1.0 + i / 1000, repetition=i) for i in range(6)]
    noisy = [row("m", "pi", 2, e, repetition=i) for i, e in enumerate((1.0, 1.3, 0.8, 1.1, 0.9, 1.2))]
    outlier = [row("m", "pi", 4, e, repetition=i) for i, e in enumerate((1.0, 1.01, 0.99, 1.0, 1.02, 3.0))]
    text = report(cells(steady + noisy + outlier))
    warning_lines = [line for line in text.splitlines() if line.startswith("warning:")]
    assert warning_lines == [  # threads=2 (spread) and threads=4 (the outlier inflates the CV)
        "warning: CV > 5 % in m pi threads=2 (n=6): e2e s 17.8 %, decode tok/s 18.4 %",
        "warning: CV > 5 % in m pi threads=4 (n=6): e2e s 61.0 %, decode tok/s 30.6 %"]
    assert ("outlier: m pi threads=4 repetition 5: e2e s 3.000 (median 1.005), decode tok/s 33.33 (median 99.50)"
            in text.splitlines())
    assert max(len(line) for line in text.splitlines()) <= 130


def test_small_samples_mark_their_interval():
    text = report(cells([row("m", "pi", 1, e, repetition=i) for i, e in enumerate((1.0, 1.1, 1.2))]))
    assert "1.000-1.200*" in text and "75 % at n=3" in text
