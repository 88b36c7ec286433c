"""Agreement between scorers on the answers both scored: Spearman's rank correlation and mean absolute difference."""

from __future__ import annotations

import math
from dataclasses import dataclass
from itertools import combinations


@dataclass(frozen=True)
class Agreement:
    a: str
    b: str
    n: int  # distinct answers both scorers gave a score
    spearman: float  # NaN with fewer than 2 answers or when one scorer gave them all the same score
    mean_abs_diff: float  # NaN with no common answer


def ranks(values: list[float]) -> list[float]:
    """1-based ranks; ties share their average rank."""
    order = sorted(range(len(values)), key=values.__getitem__)
    result = [0.0] * len(values)
    i = 0
    while i < len(order):
        j = i
        while j + 1 < len(order) and values[order[j + 1]] == values[order[i]]:
            j += 1
        for k in range(i, j + 1):
            result[order[k]] = (i + j) / 2 + 1
        i = j + 1
    return result


def spearman(xs: list[float], ys: list[float]) -> float:
    """Pearson correlation of the ranks (the tie-corrected Spearman rho)."""
    if len(xs) < 2:
        return math.nan
    rx, ry = ranks(xs), ranks(ys)
    mx, my = sum(rx) / len(rx), sum(ry) / len(ry)
    sxy = sum((x - mx) * (y - my) for x, y in zip(rx, ry))
    sxx, syy = sum((x - mx) ** 2 for x in rx), sum((y - my) ** 2 for y in ry)
    return sxy / math.sqrt(sxx * syy) if sxx and syy else math.nan


def pairwise(scores: list[dict], answer_of_task: dict[str, str]) -> list[Agreement]:
    """Every pair of scorers, over the distinct answers (answer_of_task: task id -> answer id) both scored."""
    by_scorer: dict[str, dict[str, float]] = {}
    for row in scores:
        aid = answer_of_task.get(row["task_id"])
        if aid is not None and not math.isnan(row["score"]):
            by_scorer.setdefault(row["scorer"], {}).setdefault(aid, row["score"])
    result = []
    for a, b in combinations(sorted(by_scorer), 2):
        common = sorted(set(by_scorer[a]) & set(by_scorer[b]))
        xs, ys = [by_scorer[a][k] for k in common], [by_scorer[b][k] for k in common]
        mad = sum(abs(x - y) for x, y in zip(xs, ys)) / len(common) if common else math.nan
        result.append(Agreement(a, b, len(common), spearman(xs, ys), mad))
    return result
