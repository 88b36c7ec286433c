"""Quality plots of a scored results file, one set per scorer: score against model size, score against threads,
and quality against cost (mean score against core-seconds per answer = threads x end-to-end time) with the
Pareto front (no other configuration is both cheaper and better) marked. Curves by series (a model, or one of its
engine configurations when it ran with several); a plot that cannot inform (one model, one thread count) is skipped.

Usage: python -m analysis.quality results/<run-id>/results.h5 [--out DIR]
Scores without a usable value (an unparsable judgement) are left out of every mean.
"""

from __future__ import annotations

import math
import sys
from collections import defaultdict
from pathlib import Path

import matplotlib.ticker

from analysis.command import plot_command
from analysis.figures import MARKERS, Figures, curve, footnote, new_figure, save, slug, wrapped
from mpibench.findings import pareto_front
from mpibench.store.hdf5 import Results, ResultsFileError, read_results
from mpibench.summary import engine_config, engines_by_model

NOT_SCORED = "not scored (mpibench score --scorer rubric)"


def scored_tasks(results, scorer: str) -> list[dict]:
    """Successful tasks with this scorer's usable score, each with "score", "core_s" and "series" (its model, and
    its engine configuration in brackets when the model ran with several, as summary.Cell.series) added."""
    by_task = {r["task_id"]: r for r in results.results if r["status"] == "ok"}
    several = {m for m, configs in engines_by_model(results.results).items() if len(configs) > 1}
    rows = []
    for score in results.scores:
        task = by_task.get(score["task_id"])
        if score["scorer"] == scorer and task is not None and not math.isnan(score["score"]):
            model = task["model"]
            series = f"{model} [{engine_config(task) or 'not run'}]" if model in several else model
            rows.append(dict(task, score=score["score"], core_s=task["threads"] * task["e2e_s"], series=series))
    return rows


def _mean(values) -> float:
    values = list(values)
    return sum(values) / len(values)


def _grouped(rows: list[dict], *keys: str) -> dict[tuple, list[dict]]:
    groups: dict[tuple, list[dict]] = defaultdict(list)
    for row in rows:
        groups[tuple(row[k] for k in keys)].append(row)
    return dict(sorted(groups.items()))


def score_axis(ax) -> None:
    """The 1-10 score scale."""
    ax.set_ylim(0.5, 10.5)
    ax.set_yticks(range(1, 11))
    ax.grid(alpha=0.3)


def _vs_model_size(rows, parameters: dict[str, int], scorer: str, path: Path) -> Path:
    fig, (ax,) = new_figure(1, height=4.5)
    prompts = _grouped(rows, "prompt_id")
    for i, ((prompt,), group) in enumerate(prompts.items()):
        points = sorted((parameters[m], _mean(r["score"] for r in g)) for (m,), g in _grouped(group, "model").items())
        shift = 1 + 0.03 * (i - (len(prompts) - 1) / 2)  # log axis: dodge by a factor
        ax.plot([p / 1e6 * shift for p, _ in points], [s for _, s in points], marker=MARKERS[i % len(MARKERS)],
                alpha=0.7, label=prompt)
    overall = sorted((parameters[m], _mean(r["score"] for r in g)) for (m,), g in _grouped(rows, "model").items())
    ax.plot([p / 1e6 for p, _ in overall], [s for _, s in overall], "k-", lw=2.5, marker="s", label="all prompts")
    ax.set_xscale("log")
    ax.xaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
    models = sorted({r["model"] for r in rows}, key=parameters.get)
    ax.set_xticks([parameters[m] / 1e6 for m in models], [f"{m}\n{parameters[m] / 1e6:,.0f}M" for m in models],
                  fontsize=7)
    ax.set(title=f"score against model size ({scorer})", xlabel="model (parameters, log scale)", ylabel="mean score")
    score_axis(ax)
    ax.legend(fontsize=7, ncols=2)
    return save(fig, path)


def by_threads(rows: list[dict]) -> tuple[list[int], list[float]]:
    """The thread counts of the rows, in order, and the mean score at each."""
    groups = _grouped(rows, "threads")
    return [t for (t,) in groups], [_mean(r["score"] for r in g) for g in groups.values()]


def _vs_threads(rows, scorer: str, path: Path) -> Path:
    series = sorted({r["series"] for r in rows})
    fig, axes = new_figure(len(series))
    threads = sorted({r["threads"] for r in rows})
    for ax, name in zip(axes, series):
        mine = [r for r in rows if r["series"] == name]
        prompts = _grouped(mine, "prompt_id")
        for i, ((prompt,), group) in enumerate(prompts.items()):
            xs, ys = by_threads(group)
            curve(ax, xs, ys, [0] * len(xs), [0] * len(xs), i, len(prompts) + 1, threads, alpha=0.7, label=prompt)
        xs, ys = by_threads(mine)
        curve(ax, xs, ys, [0] * len(xs), [0] * len(xs), len(prompts), len(prompts) + 1, threads, color="k", lw=2.5,
              label="all prompts")
        ax.set_title(wrapped(name, 40), fontsize=10)
        ax.set(xlabel="threads (cores)", ylabel="mean score")
        ax.set_xticks(threads)
        score_axis(ax)
        ax.legend(fontsize=7)
    fig.suptitle(f"score against threads ({scorer}): greedy decoding should leave it flat")
    footnote(fig, "curves shifted apart slightly so that equal scores stay visible")
    return save(fig, path)


def _quality_vs_cost(rows, scorer: str, path: Path) -> Path:
    fig, (ax,) = new_figure(1, height=4.8)
    configs = _grouped(rows, "series", "threads")
    points = [(_mean(r["core_s"] for r in g), _mean(r["score"] for r in g)) for g in configs.values()]
    colors = {s: f"C{i % 10}" for i, s in enumerate(sorted({s for s, _ in configs}))}
    for series, color in colors.items():
        ax.scatter([], [], s=60, color=color, label=wrapped(series))
    for ((series, threads), group), (cost, score) in zip(configs.items(), points):
        ax.scatter([r["core_s"] for r in group], [r["score"] for r in group], s=12, alpha=0.25, color=colors[series])
        ax.scatter([cost], [score], s=60, color=colors[series], zorder=3)
        ax.annotate(f"t={threads}", (cost, score), textcoords="offset points", xytext=(6, 4), fontsize=7)
    front = pareto_front(points)
    ax.plot([points[i][0] for i in front], [points[i][1] for i in front], "k--", lw=1.2, zorder=2,
            marker="o", markersize=13, markerfacecolor="none", label="Pareto front (cheapest for its score)")
    ax.set_xscale("log")
    ax.set(title=f"quality against cost ({scorer}): faint dots are single answers",
           xlabel="core-seconds per answer (threads x end-to-end time, log scale)", ylabel="mean score")
    score_axis(ax)
    ax.legend(fontsize=7, loc="lower right")
    return save(fig, path)


def quality_figures(results: Results, out: Path) -> Figures:
    """Draw the quality plots that can inform for every scorer with usable scores into `out`; says why the others
    were skipped."""
    parameters = {m["name"]: m["parameters"] for m in results.models}
    scorers = sorted({s["scorer"] for s in results.scores})
    if not scorers:
        return Figures([], [f"score plots: {NOT_SCORED}"])
    paths, skipped = [], []
    for scorer in scorers:
        rows = scored_tasks(results, scorer)
        if not rows:
            skipped.append(f"score plots ({scorer}): no usable score")
            continue
        out.mkdir(parents=True, exist_ok=True)
        name = slug(scorer)
        models = sorted({r["model"] for r in rows})
        threads = sorted({r["threads"] for r in rows})
        if len(models) < 2:
            skipped.append(f"score_vs_model_size_{name}: one model only ({models[0]}); nothing to compare")
        else:
            paths.append(_vs_model_size(rows, parameters, scorer, out / f"score_vs_model_size_{name}.png"))
        if len(threads) < 2:
            skipped.append(f"score_vs_threads_{name}: one thread count only ({threads[0]}); nothing to compare")
        else:
            paths.append(_vs_threads(rows, scorer, out / f"score_vs_threads_{name}.png"))
        paths.append(_quality_vs_cost(rows, scorer, out / f"quality_vs_cost_{name}.png"))
    return Figures(paths, skipped)


def draw_quality(results_path: str | Path, out_dir: str | Path, exclude_contended: bool = False) -> list[Path]:
    """Draw the quality plots that can inform for every scorer with usable scores; returns the files written."""
    written = quality_figures(read_results(results_path, exclude_contended), Path(out_dir)).paths
    if not written:
        raise ResultsFileError(f"{results_path}: no usable scores to plot; run mpibench score first")
    return written


def main(argv: list[str] | None = None) -> int:
    return plot_command(draw_quality, __doc__.splitlines()[0], argv)


if __name__ == "__main__":
    sys.exit(main())
