"""Plots of a results file: runtime, decode and prefill speed, TTFT, speedup and efficiency against threads; decode
against its memory roofline; runtime against model size; per model, runtime and score against threads; the quality
plots when the run was scored; a load run's plots (analysis.load_plots) when it has load points.

Usage: python -m analysis.plots results/<run-id>/results.h5 [--out DIR]
Every point is the median over a cell's successful repetitions, its bar the median's 95 % interval; a plot that
cannot inform (one model, one thread count, no cell with the metric) is skipped and the reason kept.
"""

from __future__ import annotations

import math
import sys
from collections import defaultdict
from pathlib import Path

import matplotlib.ticker

from analysis.command import plot_command
from analysis.figures import MARKERS, Figures, bar, ci_note, curve, footnote, new_figure, save, slug, wrapped
from analysis.load_plots import load_figures
from analysis.quality import NOT_SCORED, by_threads, quality_figures, score_axis, scored_tasks
from mpibench.store.hdf5 import Results, ResultsFileError, read_results
from mpibench.summary import LABELS, Cell, cells, model_label, speedup_intervals

THREADS = "threads (cores)"
AGAINST_THREADS = (("runtime_vs_threads", "e2e_s", "end-to-end time (s)", "runtime against threads"),
                   ("decode_vs_threads", "decode_tok_s", "decode tokens/s", "decode speed against threads"),
                   ("prefill_vs_threads", "prefill_tok_s", "prefill tokens/s", "prefill speed against threads"),
                   ("ttft_vs_threads", "ttft_s", "time to first token (s)", "time to first token against threads"))


def plotted(all_cells: list[Cell], metric: str) -> list[Cell]:
    """The cells a plot of `metric` shows: those that measured it, with a median. A bench test has its time and
    its own rate only: pp tests in prefill plots, tg tests in decode plots, neither in TTFT plots."""
    return [c for c in all_cells if (c.kind != "bench" or metric in ("e2e_s", c.rate_metric))
            and not math.isnan(c.medians[metric])]


def lines(shown: list[Cell]) -> dict[tuple[str, str], list[Cell]]:
    """(series, prompt) -> its cells by threads: one curve each."""
    by_line: dict[tuple[str, str], list[Cell]] = defaultdict(list)
    for cell in shown:
        by_line[(cell.series, cell.prompt_id)].append(cell)
    return {key: sorted(cs, key=lambda c: c.threads) for key, cs in by_line.items()}


def threads_reason(shown: list[Cell], metric: str) -> str | None:
    """Why a plot of `metric` against threads cannot inform, or None if it can."""
    if not shown:
        return f"no successful cell measured {LABELS[metric]}"
    threads = sorted({c.threads for c in shown})
    if len(threads) < 2:
        return f"one thread count only ({threads[0]}); nothing to compare"
    return None


def _cell_curves(ax, shown: list[Cell], metric: str, label) -> None:
    """A curve per (series, prompt) of `metric` medians with interval bars; label(series, prompt) names it."""
    by_line = lines(shown)
    xs = [c.threads for c in shown]
    for i, ((series, prompt), cs) in enumerate(by_line.items()):
        below, above = zip(*(bar(c.stats[metric]) for c in cs))
        curve(ax, [c.threads for c in cs], [c.medians[metric] for c in cs], below, above, i, len(by_line), xs,
              label=label(series, prompt))


def _threads_axis(ax, shown: list[Cell]) -> None:
    ax.set_xticks(sorted({c.threads for c in shown}))
    ax.set_xlabel(THREADS)
    ax.grid(alpha=0.3)


def _per_series_figure(shown: list[Cell], metric: str, ylabel: str, title: str, path: Path) -> Path:
    series = sorted({c.series for c in shown})
    fig, axes = new_figure(len(series))
    for ax, name in zip(axes, series):
        mine = [c for c in shown if c.series == name]
        _cell_curves(ax, mine, metric, lambda _, prompt: prompt)
        ax.set_title(wrapped(name, 40), fontsize=10)
        ax.set_ylabel(ylabel)
        _threads_axis(ax, shown)
        ax.legend(fontsize=7)
    fig.suptitle(title)
    footnote(fig, ci_note(c.stats[metric] for c in shown))
    return save(fig, path)


def _speedup_figure(shown: list[Cell], path: Path) -> Path:
    speedup = speedup_intervals(shown)
    threads = sorted({c.threads for c in shown})
    by_line = lines(shown)
    fig, (left, right) = new_figure(2)
    for i, ((series, prompt), cs) in enumerate(by_line.items()):
        xs = [c.threads for c in cs]
        ups = [speedup[(series, prompt, x)] for x in xs]
        gaps = [[0.0 if math.isnan(b) else b for b in side] for side in
                ([s.value - s.ci_low for s in ups], [s.ci_high - s.value for s in ups])]
        curve(left, xs, [s.value for s in ups], *gaps, i, len(by_line), threads,
              label=wrapped(f"{series} / {prompt}"))
        scale = [s.base_threads / x for s, x in zip(ups, xs)]
        curve(right, xs, [s.value * k for s, k in zip(ups, scale)], [g * k for g, k in zip(gaps[0], scale)],
              [g * k for g, k in zip(gaps[1], scale)], i, len(by_line), threads)
    left.plot(threads, [t / threads[0] for t in threads], "k--", label="ideal")
    right.axhline(1.0, color="k", ls="--")
    left.set(title="speedup (end-to-end time)", ylabel="speedup over fewest threads")
    right.set(title="parallel efficiency", ylabel="speedup / (threads / fewest)")
    for ax in (left, right):
        _threads_axis(ax, shown)
    handles, labels = left.get_legend_handles_labels()
    widest = max(len(line) for label in labels for line in label.splitlines())
    fig.legend(handles, labels, loc="outside upper center", ncols=3 if widest <= 30 else 2, fontsize=7)
    footnote(fig, "bars: 95 % bootstrap interval of the ratio of medians (efficiency: the same, scaled); "
                  "no bar where a cell has under 2 runs")
    return save(fig, path)


def roofline_reason(shown: list[Cell], decoded: list[Cell]) -> str | None:
    """Why the roofline plot cannot be drawn, or None if it can."""
    if not decoded:
        return f"no successful cell measured {LABELS['decode_tok_s']}"
    if not shown:
        return "no bandwidth probe in this file (mpibench measures one at the start of every run since schema 5)"
    return None


def _roofline_figure(shown: list[Cell], path: Path) -> Path:
    """Per series: decode tok/s against threads with its bound (dashed, same colour), each point labelled with the
    share of the bound it reached."""
    series = sorted({c.series for c in shown})
    fig, axes = new_figure(len(series))
    for ax, name in zip(axes, series):
        by_line = lines([c for c in shown if c.series == name])
        xs = [c.threads for c in shown if c.series == name]
        for i, ((_, prompt), cs) in enumerate(by_line.items()):
            threads, decode = [c.threads for c in cs], [c.medians["decode_tok_s"] for c in cs]
            below, above = zip(*(bar(c.stats["decode_tok_s"]) for c in cs))
            curve(ax, threads, decode, below, above, i, len(by_line), xs, color=f"C{i}", label=f"{prompt} decode")
            ax.plot(threads, [c.medians["roofline_tok_s"] for c in cs], ls="--", color=f"C{i}", label=f"{prompt} bound")
            for c in cs:
                ax.annotate(f"{100 * c.medians['roofline_fraction']:.0f} %", (c.threads, c.medians["decode_tok_s"]),
                            textcoords="offset points", xytext=(6, -10), fontsize=7, color=f"C{i}")
        ax.set_title(wrapped(name, 40), fontsize=10)
        ax.set_ylabel("decode tokens/s")
        ax.set_ylim(bottom=0)
        _threads_axis(ax, shown)
        ax.legend(fontsize=7)
    fig.suptitle("decode against its memory roofline")
    footnote(fig, wrapped(ci_note(c.stats["decode_tok_s"] for c in shown) + "; dashed: the bound, read bandwidth at "
                          "the thread count / bytes read per token (median of the cell's runs); labels: the share of "
                          "it reached", 150))
    return save(fig, path)


def _model_size_figure(shown: list[Cell], parameters: dict[str, int], path: Path) -> Path:
    prompts = sorted({c.prompt_id for c in shown})
    fig, axes = new_figure(len(prompts), columns=3, height=3.0)
    for ax, prompt in zip(axes, prompts):
        mine = [c for c in shown if c.prompt_id == prompt]
        # one line per thread count, and per engine configuration where a model ran with several
        keys = sorted({(c.threads, c.apart_engine) for c in mine})
        for i, (threads, engine) in enumerate(keys):
            cs = sorted((c for c in mine if c.threads == threads and c.apart_engine == engine),
                        key=lambda c: parameters[c.model])
            below, above = zip(*(bar(c.stats["e2e_s"]) for c in cs))
            ax.errorbar([parameters[c.model] / 1e6 for c in cs], [c.medians["e2e_s"] for c in cs], yerr=[below, above],
                        marker=MARKERS[i % len(MARKERS)], capsize=3, markersize=5,
                        label=wrapped(f"{threads} threads" + (f" [{engine}]" if engine else "")))
        ax.set(title=prompt, xlabel="model (parameters, log scale)", ylabel="end-to-end time (s)")
        ax.set_xscale("log")
        ax.xaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
        models = sorted({(c.model, c.synthetic) for c in mine}, key=lambda m: parameters[m[0]])
        ax.set_xticks([parameters[m] / 1e6 for m, _ in models],
                      [f"{wrapped(model_label(m, s), 20)}\n{parameters[m] / 1e6:,.0f}M" for m, s in models], fontsize=7)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    fig.suptitle("runtime against model size")
    footnote(fig, ci_note(c.stats["e2e_s"] for c in shown))
    return save(fig, path)


def _scaling_figure(model: str, shown: list[Cell], scores: dict[str, list[dict]], path: Path) -> Path:
    """Runtime against threads on top, mean score against threads below, for one model."""
    fig, (top, bottom) = new_figure(2, columns=1, height=2.6, sharex=True)
    several = len({c.series for c in shown}) > 1
    _cell_curves(top, shown, "e2e_s", lambda series, prompt: wrapped(f"{series} / {prompt}") if several else prompt)
    top.set(title=f"{model_label(model, any(c.synthetic for c in shown))}: scaling at a glance",
            ylabel="end-to-end time (s)")
    top.grid(alpha=0.3)
    top.legend(fontsize=7)
    means = {(scorer, series): by_threads([r for r in rows if r["series"] == series])
             for scorer, rows in scores.items() for series in sorted({r["series"] for r in rows})}
    xs = [c.threads for c in shown]
    for i, ((scorer, series), (ts, ys)) in enumerate(means.items()):
        curve(bottom, ts, ys, [0] * len(ts), [0] * len(ts), i, len(means), xs,
              label=wrapped(scorer + (f" / {series}" if several else "")))
    score_axis(bottom)
    if means:
        bottom.legend(fontsize=7)
    else:
        unscored = "bench tests: no answers to score" if all(c.kind == "bench" for c in shown) else NOT_SCORED
        bottom.text(0.5, 0.5, unscored, transform=bottom.transAxes, ha="center", va="center", color="0.4")
    bottom.set_ylabel("mean score")
    _threads_axis(bottom, shown)
    footnote(fig, ci_note(c.stats["e2e_s"] for c in shown) + "; scores: mean over the answers at each thread count")
    return save(fig, path)


def figures(results_path: str | Path, out_dir: str | Path, exclude_contended: bool = False) -> Figures:
    """Draw every plot of a results file that can inform into out_dir (quality plots too when it was scored, load
    plots when it has load points); returns the files written and why each other plot was skipped."""
    return results_figures(read_results(results_path, exclude_contended), out_dir, results_path)


def results_figures(results: Results, out_dir: str | Path, source: str | Path = "results") -> Figures:
    """figures() of results already read; `source` names them in the error when there is nothing to plot."""
    all_cells = [c for c in cells(results.results) if not math.isnan(c.medians["e2e_s"])]
    if not all_cells and not results.load_points:
        raise ResultsFileError(f"{source}: no successful task to plot")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    load = load_figures(results, out) if results.load_points else Figures([], [])
    if not all_cells:
        return load
    paths, skipped = list(load.paths), list(load.skipped)

    def draw(name: str, reason: str | None, drawer) -> None:
        if reason:
            skipped.append(f"{name}: {reason}")
        else:
            paths.append(drawer(out / f"{name}.png"))

    for name, metric, ylabel, title in AGAINST_THREADS:
        shown = plotted(all_cells, metric)
        draw(name, threads_reason(shown, metric),
             lambda path, shown=shown, metric=metric, ylabel=ylabel, title=title:
             _per_series_figure(shown, metric, ylabel, title, path))
    decoded = plotted(all_cells, "decode_tok_s")
    bounded = [c for c in decoded if not math.isnan(c.medians["roofline_tok_s"])]
    draw("decode_roofline", roofline_reason(bounded, decoded), lambda path: _roofline_figure(bounded, path))
    runtime = plotted(all_cells, "e2e_s")
    draw("speedup_efficiency", threads_reason(runtime, "e2e_s"), lambda path: _speedup_figure(runtime, path))
    parameters = {m["name"]: m["parameters"] for m in results.models}
    models = sorted({c.model for c in runtime})
    draw("runtime_vs_model_size", f"one model only ({models[0]}); nothing to compare" if len(models) < 2 else None,
         lambda path: _model_size_figure(runtime, parameters, path))
    scored = {s: scored_tasks(results, s) for s in sorted({s["scorer"] for s in results.scores})}
    for model in models:
        mine = [c for c in runtime if c.model == model]
        scores = {s: [r for r in rows if r["model"] == model] for s, rows in scored.items()}
        draw(f"scaling_{slug(model)}", threads_reason(mine, "e2e_s"),
             lambda path, model=model, mine=mine, scores=scores: _scaling_figure(model, mine, scores, path))
    quality = quality_figures(results, out)
    return Figures(paths + quality.paths, skipped + quality.skipped)


def draw_all(results_path: str | Path, out_dir: str | Path) -> list[Path]:
    """Draw every plot of a results file that can inform into out_dir; returns the files written."""
    return figures(results_path, out_dir).paths


def _draw_and_say_skipped(results_path: str, out_dir: Path, exclude_contended: bool) -> list[Path]:
    drawn = figures(results_path, out_dir, exclude_contended)
    for reason in drawn.skipped:
        print(f"skipped {reason}", file=sys.stderr)
    return drawn.paths


def main(argv: list[str] | None = None) -> int:
    return plot_command(_draw_and_say_skipped, __doc__.splitlines()[0], argv)


if __name__ == "__main__":
    sys.exit(main())
