"""Plots of a results file: runtime, decode speed, speedup and efficiency against threads; runtime against model size.

Usage: python -m analysis.plots results/<run-id>/results.h5 [--out DIR]
Every point is the median over a cell's successful repetitions.
"""

from __future__ import annotations

import math
import sys
from collections import defaultdict
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from analysis.command import plot_command  # noqa: E402
from mpibench.store.hdf5 import ResultsFileError, read_results  # noqa: E402
from mpibench.summary import Cell, cells, speedups  # noqa: E402


def _series(all_cells: list[Cell], series: str):
    """prompt id -> (threads, cells) sorted by threads, for one series (a model, or one of its engine
    configurations when it ran with several)."""
    by_prompt = defaultdict(list)
    for cell in all_cells:
        if cell.series == series:
            by_prompt[cell.prompt_id].append(cell)
    return {p: sorted(cs, key=lambda c: c.threads) for p, cs in sorted(by_prompt.items())}


def _per_model_figure(all_cells, models, metric, ylabel, title, path) -> Path:
    fig, axes = plt.subplots(1, len(models), figsize=(5 * len(models), 4), squeeze=False)
    for ax, model in zip(axes[0], models):
        for prompt, series in _series(all_cells, model).items():
            ax.plot([c.threads for c in series], [c.medians[metric] for c in series], marker="o", label=prompt)
        ax.set(title=model, xlabel="threads (cores)", ylabel=ylabel)
        ax.set_xticks(sorted({c.threads for c in all_cells}))
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def _scaling_figure(all_cells, models, path) -> Path:
    speedup = speedups(all_cells)
    threads = sorted({c.threads for c in all_cells})
    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4.2))
    for model in models:
        for prompt, series in _series(all_cells, model).items():
            xs = [c.threads for c in series]
            ys = [speedup[(model, prompt, c.threads)] for c in series]
            left.plot(xs, ys, marker="o", label=f"{model} / {prompt}")
            right.plot(xs, [s * xs[0] / x for s, x in zip(ys, xs)], marker="o")
    left.plot(threads, [t / threads[0] for t in threads], "k--", label="ideal")
    right.axhline(1.0, color="k", ls="--")
    left.set(title="speedup (end-to-end time)", xlabel="threads (cores)", ylabel="speedup over fewest threads")
    right.set(title="parallel efficiency", xlabel="threads (cores)", ylabel="speedup / (threads / fewest)")
    for ax in (left, right):
        ax.set_xticks(threads)
        ax.grid(alpha=0.3)
    left.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def _model_size_figure(all_cells, parameters: dict[str, int], path) -> Path:
    prompts = sorted({c.prompt_id for c in all_cells})
    columns = min(3, len(prompts))
    rows = -(-len(prompts) // columns)
    fig, axes = plt.subplots(rows, columns, figsize=(4.5 * columns, 3.6 * rows), squeeze=False)
    for ax in axes.flat[len(prompts):]:
        ax.set_visible(False)
    for ax, prompt in zip(axes.flat, prompts):
        # one line per thread count, and per engine configuration where a model ran with several
        for threads, engine in sorted({(c.threads, c.apart_engine) for c in all_cells}):
            points = sorted((parameters[c.model], c.medians["e2e_s"], c.model) for c in all_cells
                            if c.prompt_id == prompt and c.threads == threads and c.apart_engine == engine)
            ax.plot([p[0] / 1e6 for p in points], [p[1] for p in points], marker="o",
                    label=f"{threads} threads" + (f" [{engine}]" if engine else ""))
        ax.set(title=prompt, xlabel="model (parameters, log scale)", ylabel="end-to-end time (s)")
        ax.set_xscale("log")
        ax.xaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
        ax.set_xticks([p / 1e6 for p in parameters.values()],
                      [f"{name}\n{p / 1e6:,.0f}M" for name, p in parameters.items()], fontsize=7)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    fig.suptitle("runtime against model size")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def draw_all(results_path: str | Path, out_dir: str | Path) -> list[Path]:
    """Draw every plot of a results file into out_dir; returns the files written."""
    results = read_results(results_path)
    all_cells = [c for c in cells(results.results) if not math.isnan(c.medians["e2e_s"])]
    if not all_cells:
        raise ResultsFileError(f"{results_path}: no successful task to plot")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    models = sorted({c.series for c in all_cells})  # a model that ran with several engines: one panel each
    parameters = {m["name"]: m["parameters"] for m in results.models}
    return [
        _per_model_figure(all_cells, models, "e2e_s", "end-to-end time (s)", "runtime against threads", out / "runtime_vs_threads.png"),
        _per_model_figure(all_cells, models, "decode_tok_s", "decode tokens/s", "decode speed against threads", out / "decode_vs_threads.png"),
        _scaling_figure(all_cells, models, out / "speedup_efficiency.png"),
        _model_size_figure(all_cells, parameters, out / "runtime_vs_model_size.png"),
    ]


def main(argv: list[str] | None = None) -> int:
    return plot_command(draw_all, __doc__.splitlines()[0], argv)


if __name__ == "__main__":
    sys.exit(main())
