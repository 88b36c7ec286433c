"""Tables of a run's scores: per scorer, mean score per model and prompt at each thread count; scorer agreement."""

from __future__ import annotations

import math
from collections import defaultdict

from mpibench.scoring.agreement import pairwise
from mpibench.scoring.answers import answer_id
from mpibench.table import table_lines


def cell_scores(records: list[dict], scores: list[dict], scorer: str) -> dict[tuple[str, str, int], list[float]]:
    """(model, prompt, threads) -> this scorer's scores of the cell's tasks (NaN where it gave none)."""
    by_task = {r["task_id"]: r for r in records}
    cells: dict[tuple[str, str, int], list[float]] = defaultdict(list)
    for row in scores:
        task = by_task.get(row["task_id"])
        if row["scorer"] == scorer and task is not None:
            cells[(task["model"], task["prompt_id"], task["threads"])].append(row["score"])
    return cells


def _mean(values: list[float]) -> float:
    finite = [v for v in values if not math.isnan(v)]
    return sum(finite) / len(finite) if finite else math.nan


def _fmt(value: float) -> str:
    return "?" if math.isnan(value) else f"{value:.1f}".removesuffix(".0")


def format_scores(records: list[dict], scores: list[dict], scorers: list[dict]) -> str:
    """Every scorer's table (mean over repetitions; '?' = no usable score), then agreement between scorers."""
    if not scorers:
        return "no scores yet: run mpibench score <results.h5> --scorer rubric|judge|human"
    threads = sorted({r["threads"] for r in records})
    out = []
    for scorer in scorers:
        name = scorer["scorer"]
        cells = cell_scores(records, scores, name)
        values = [v for vs in cells.values() for v in vs]
        unusable = sum(math.isnan(v) for v in values)
        out.append(f"{name} ({scorer['scorer_version']}, scored {scorer['scored_at']}): {len(values)} tasks scored"
                   + (f", {unusable} without a usable score" if unusable else ""))
        rows = [("model", "prompt", *(f"t={t}" for t in threads), "mean")]
        for model, prompt in sorted({(m, p) for m, p, _ in cells}):
            per_thread = [cells.get((model, prompt, t), []) for t in threads]
            rows.append((model, prompt, *(_fmt(_mean(v)) if v else "" for v in per_thread),
                         _fmt(_mean([x for v in per_thread for x in v]))))
        for model in sorted({m for m, _, _ in cells}):
            per_thread = [[x for (m, _, t), v in cells.items() if m == model and t == th for x in v] for th in threads]
            rows.append((model, "(all prompts)", *(_fmt(_mean(v)) if v else "" for v in per_thread),
                         _fmt(_mean([x for v in per_thread for x in v]))))
        out += table_lines(rows) + [""]
    agreements = pairwise(scores, {r["task_id"]: answer_id(r["prompt_id"], r["answer"]) for r in records})
    if agreements:
        out.append("agreement between scorers (over distinct answers both scored)")
        out += table_lines([("scorer a", "scorer b", "answers", "spearman", "mean |a-b|")] + [
            (g.a, g.b, str(g.n), "-" if math.isnan(g.spearman) else f"{g.spearman:.2f}",
             "-" if math.isnan(g.mean_abs_diff) else f"{g.mean_abs_diff:.2f}") for g in agreements])
    return "\n".join(out).rstrip()
