"""The plots of a load run (which are drawn for two server configurations, what their markers say, that a plain
run draws none of them) and the report's load section."""

import matplotlib.pyplot as plt
import pytest

from mpibench.table import counted
from analysis.load_plots import _curve, configurations, load_figures
from analysis.plots import figures, results_figures
from analysis.report import sections, to_html, to_markdown
from helpers import assert_pngs, header
from load_results import load_run, point_row
from mpibench.store.hdf5 import Results, write_results
from mpibench.store.schema import empty_result

LOAD_PLOTS = ["load_achieved_vs_offered.png", "load_latency_vs_throughput.png", "load_per_user_vs_aggregate.png",
              "load_timeline_P1xS1xT2.png", "load_timeline_P1xS4xT2.png"]


def names(drawn) -> list[str]:
    return sorted(p.name for p in drawn.paths)


def test_a_load_run_with_two_server_configurations_draws_every_load_plot(tmp_path):
    drawn = results_figures(load_run(rates=(2.0, 4.0)), tmp_path / "plots")
    assert names(drawn) == LOAD_PLOTS and drawn.skipped == []
    assert_pngs(drawn.paths)


def test_a_plain_run_draws_no_load_plot(tmp_path):
    rows = [empty_result(index=i, task_id=f"t{i}", model="m", prompt_id="pi", threads=t, status="ok", hostname="h",
                         e2e_s=1.0 / t, ttft_s=0.1, decode_tok_s=8.0 * t, generated_tokens=8, answer="a",
                         token_ns=[1, 2]) for i, t in enumerate((1, 2))]
    path = tmp_path / "results.h5"
    write_results(path, header(len(rows)), rows)
    drawn = figures(path, tmp_path / "plots")
    assert drawn.paths and not any(p.name.startswith("load_") for p in drawn.paths)
    assert not any(s.startswith("load_") for s in drawn.skipped)


def test_one_load_point_skips_the_curves_and_says_why_but_draws_its_timeline(tmp_path):
    drawn = load_figures(load_run(configs=((1, 4, 2),), users=(2,)), tmp_path)
    assert names(drawn) == ["load_timeline_P1xS4xT2.png"]
    assert sorted(drawn.skipped) == [
        "load_achieved_vs_offered: no load point with an offered and an achieved rate; nothing to compare",
        "load_latency_vs_throughput: one load point with a latency and a throughput; nothing to compare",
        "load_per_user_vs_aggregate: one load point with a TPOT and a throughput; nothing to compare"]


def test_a_load_run_without_timeline_rows_says_so(tmp_path):
    results = load_run(configs=((1, 4, 2),))
    drawn = load_figures(Results(**{**results.__dict__, "timeline": []}), tmp_path)
    assert "load_timeline_P1xS4xT2: no timeline rows for its points" in drawn.skipped


def test_curves_follow_the_load_per_configuration_and_name_the_model_when_there_are_several():
    points = load_run().load_points
    by_config = configurations(list(reversed(points)))
    assert list(by_config) == ["P1xS1xT2", "P1xS4xT2"]
    assert [p["users"] for p in by_config["P1xS4xT2"]] == [1, 2, 4]
    other = [dict(points[0], point=99, model="big")]
    assert list(configurations(points[:1] + other)) == ["big P1xS1xT2", "m P1xS1xT2"]


@pytest.mark.parametrize("config", [0, 1])
def test_invalid_points_are_hollow_and_the_knee_is_starred(config):
    points = list(configurations(load_run().load_points).values())[config]
    fig, ax = plt.subplots()
    _curve(ax, points, lambda p: p["output_tok_s"], lambda p: p["ttft_p50_s"], 0, "x")
    markers = [line for line in ax.lines if line.get_linestyle() == "None"]
    hollow = [m for m in markers if m.get_marker() != "*" and m.get_markerfacecolor() == "white"]
    stars = [m for m in markers if m.get_marker() == "*"]
    assert len(hollow) == sum(not p["valid"] for p in points)
    assert [tuple(s.get_xydata()[0]) for s in stars] == [(p["output_tok_s"], p["ttft_p50_s"])
                                                         for p in points if p["knee"]]
    plt.close(fig)


def _titles(report) -> list[str]:
    return [s.title for s in report]


def test_the_report_of_a_load_run_gives_its_points_knees_validity_and_plots(tmp_path):
    results = load_run()
    report = sections(results, results_figures(results, tmp_path / "plots"))
    assert _titles(report) == ["mpibench report: run load1", "Load test", "Load points",
                               "Knee of each server configuration", "Validity", "Load plots", "The run", "Hosts",
                               "Models", "Software and MPI", "Launch variables", "Configuration"]
    text = to_markdown(report, tmp_path)
    assert "Status complete: 6 load points" in text
    table = next(b for b in report[2].blocks if hasattr(b, "rows"))
    assert [r[:3] for r in table.rows] == [(str(p["point"]), p["server"], counted(p['users'], 'user'))
                                           for p in results.load_points]
    assert [r[-3:] for r in table.rows] == [("yes", "no" if i == 2 else "yes", "knee" if i in (1, 5) else "")
                                            for i in range(6)]
    assert "- P1xS1xT2: the knee is at 2 users: 3.000 requests/s, 48.00 output tokens/s, TTFT p50 0.380 s" in text
    assert "- P1xS4xT2: the knee is at 4 users: 8.500 requests/s, 136.0 output tokens/s" in text
    assert "TTFT \\<= 0.500 s, TPOT \\<= 0.050 s" in text
    assert "- point 2 (P1xS1xT2 4 users): invalid: achieved rate 2.0 % below offered (limit 1 %)" in text
    assert text.count("](plots/load_") == 4  # closed loops only: no offered rate
    assert "- load\\_achieved\\_vs\\_offered: no load point with an offered and an achieved rate" in text
    assert "<table>" in to_html(report)


def test_the_report_says_when_a_configuration_has_no_knee_and_which_points_were_unstable(tmp_path):
    results = load_run(configs=((1, 1, 2),), users=(1, 2))
    requests = [r for r in results.requests if r["point"] == 1]
    points = [results.load_points[0] | {"knee": 0},
              point_row(1, (1, 1, 2), 2, requests, stable=0, queue_slope=0.25, knee=0)]
    report = sections(Results(**{**results.__dict__, "load_points": points}), results_figures(results, tmp_path))
    text = to_markdown(report, tmp_path)
    assert "- P1xS1xT2: no knee: none of its 2 points qualifies." in text
    assert "- point 1 (P1xS1xT2 2 users): unstable: the queue grew 0.250 requests/s" in text
