"""Quality plots of a scored results file, one set per scorer: score against model size, score against threads,
and quality against cost (mean score against core-seconds per answer = threads x end-to-end time) with the
Pareto front (no other configuration is both cheaper and better) marked.

Usage: python -m analysis.quality results/<run-id>/results.h5 [--out DIR]
Scores without a usable value (an unparsable judgement) are left out of every mean.
"""

from __future__ import annotations

import math
import re
import sys
from collections import defaultdict
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from analysis.command import plot_command  # noqa: E402
from mpibench.store.hdf5 import ResultsFileError, read_results  # noqa: E402


def pareto_front(points: list[tuple[float, float]]) -> list[int]:
    """Indices of the (cost, score) points that no other point beats on both (cheaper or equal and better or equal,
    strictly on one), sorted by cost."""
    front = [i for i, (c, s) in enumerate(points)
             if not any(c2 <= c and s2 >= s and (c2, s2) != (c, s) for c2, s2 in points)]
    return sorted(front, key=lambda i: points[i])


def scored_tasks(results, scorer: str) -> list[dict]:
    """Successful tasks with this scorer's usable score, each with "score" and "core_s" added."""
    by_task = {r["task_id"]: r for r in results.results if r["status"] == "ok"}
    rows = []
    for score in results.scores:
        task = by_task.get(score["task_id"])
        if score["scorer"] == scorer and task is not None and not math.isnan(score["score"]):
            rows.append(dict(task, score=score["score"], core_s=task["threads"] * task["e2e_s"]))
    return rows


def _mean(values) -> float:
    values = list(values)
    return sum(values) / len(values)


def _grouped(rows: list[dict], *keys: str) -> dict[tuple, list[dict]]:
    groups: dict[tuple, list[dict]] = defaultdict(list)
    for row in rows:
        groups[tuple(row[k] for k in keys)].append(row)
    return dict(sorted(groups.items()))


def _save(fig, path: Path) -> Path:
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def _score_axis(ax) -> None:
    ax.set_ylim(0.5, 10.5)
    ax.set_yticks(range(1, 11))
    ax.grid(alpha=0.3)


def _vs_model_size(rows, parameters: dict[str, int], scorer: str, path: Path) -> Path:
    fig, ax = plt.subplots(figsize=(6.5, 4.5))
    for (prompt,), group in _grouped(rows, "prompt_id").items():
        points = sorted((parameters[m], _mean(r["score"] for r in g)) for (m,), g in _grouped(group, "model").items())
        ax.plot([p / 1e6 for p, _ in points], [s for _, s in points], marker="o", alpha=0.7, label=prompt)
    overall = sorted((parameters[m], _mean(r["score"] for r in g)) for (m,), g in _grouped(rows, "model").items())
    ax.plot([p / 1e6 for p, _ in overall], [s for _, s in overall], "k-", lw=2.5, marker="s", label="all prompts")
    ax.set_xscale("log")
    ax.xaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
    models = sorted({r["model"] for r in rows}, key=parameters.get)
    ax.set_xticks([parameters[m] / 1e6 for m in models], [f"{m}\n{parameters[m] / 1e6:,.0f}M" for m in models], fontsize=7)
    ax.set(title=f"score against model size ({scorer})", xlabel="model (parameters, log scale)", ylabel="mean score")
    _score_axis(ax)
    ax.legend(fontsize=7)
    return _save(fig, path)


def _vs_threads(rows, scorer: str, path: Path) -> Path:
    models = sorted({r["model"] for r in rows})
    fig, axes = plt.subplots(1, len(models), figsize=(5 * len(models), 4), squeeze=False)
    threads = sorted({r["threads"] for r in rows})
    for ax, model in zip(axes[0], models):
        mine = [r for r in rows if r["model"] == model]
        for (prompt,), group in _grouped(mine, "prompt_id").items():
            cells = _grouped(group, "threads")
            ax.plot([t for (t,) in cells], [_mean(r["score"] for r in g) for g in cells.values()], marker="o",
                    alpha=0.7, label=prompt)
        cells = _grouped(mine, "threads")
        ax.plot([t for (t,) in cells], [_mean(r["score"] for r in g) for g in cells.values()], "k-", lw=2.5,
                marker="s", label="all prompts")
        ax.set(title=model, xlabel="threads (cores)", ylabel="mean score")
        ax.set_xticks(threads)
        _score_axis(ax)
        ax.legend(fontsize=7)
    fig.suptitle(f"score against threads ({scorer}): greedy decoding should leave it flat")
    return _save(fig, path)


def _quality_vs_cost(rows, scorer: str, path: Path) -> Path:
    fig, ax = plt.subplots(figsize=(7, 4.8))
    configs = _grouped(rows, "model", "threads")
    labels = [f"{m} t={t}" for m, t in configs]
    points = [(_mean(r["core_s"] for r in g), _mean(r["score"] for r in g)) for g in configs.values()]
    colors = {m: f"C{i}" for i, m in enumerate(sorted({m for m, _ in configs}))}
    for ((model, _), group), (cost, score), label in zip(configs.items(), points, labels):
        ax.scatter([r["core_s"] for r in group], [r["score"] for r in group], s=12, alpha=0.25, color=colors[model])
        ax.scatter([cost], [score], s=60, color=colors[model], zorder=3)
        ax.annotate(label, (cost, score), textcoords="offset points", xytext=(6, 4), fontsize=7)
    front = pareto_front(points)
    ax.plot([points[i][0] for i in front], [points[i][1] for i in front], "k--", lw=1.2, zorder=2,
            marker="o", markersize=13, markerfacecolor="none", label="Pareto front (cheapest for its score)")
    ax.set_xscale("log")
    ax.set(title=f"quality against cost ({scorer}): faint dots are single answers",
           xlabel="core-seconds per answer (threads x end-to-end time, log scale)", ylabel="mean score")
    _score_axis(ax)
    ax.legend(fontsize=7, loc="lower right")
    return _save(fig, path)


def draw_quality(results_path: str | Path, out_dir: str | Path) -> list[Path]:
    """Draw the three quality plots for every scorer with usable scores; returns the files written."""
    results = read_results(results_path)
    parameters = {m["name"]: m["parameters"] for m in results.models}
    out = Path(out_dir)
    written = []
    for scorer in sorted({s["scorer"] for s in results.scores}):
        rows = scored_tasks(results, scorer)
        if not rows:
            continue
        out.mkdir(parents=True, exist_ok=True)
        slug = re.sub(r"[^\w.-]+", "-", scorer)
        written += [
            _vs_model_size(rows, parameters, scorer, out / f"score_vs_model_size_{slug}.png"),
            _vs_threads(rows, scorer, out / f"score_vs_threads_{slug}.png"),
            _quality_vs_cost(rows, scorer, out / f"quality_vs_cost_{slug}.png"),
        ]
    if not written:
        raise ResultsFileError(f"{results_path}: no usable scores to plot; run mpibench score first")
    return written


def main(argv: list[str] | None = None) -> int:
    return plot_command(draw_quality, __doc__.splitlines()[0], argv)


if __name__ == "__main__":
    sys.exit(main())
