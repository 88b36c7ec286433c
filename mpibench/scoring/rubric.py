"""Score answers 1-10 by a rubric (parsed by prompts/rubric.py).

score = round(1 + 9 * points earned / points possible), then capped by any criterion with a `cap` that
earned none of its points.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from mpibench.prompts.rubric import Criterion
from mpibench.scoring.criteria import CHECKS

RUBRIC_VERSION = "rubric-v1"


@dataclass(frozen=True)
class RubricScore:
    score: int
    rationale: str


def score_answer(criteria: tuple[Criterion, ...], answer: str) -> RubricScore:
    """Deterministic 1-10 score with a short rationale naming what each criterion found."""
    if not answer.strip():
        return RubricScore(1, "empty answer")
    earned, notes, caps = 0.0, [], []
    for criterion in criteria:
        fraction, note = CHECKS[criterion.kind](answer, **criterion.params)
        earned += fraction * criterion.weight
        notes.append(f"{criterion.label} {fraction * criterion.weight:.3g}/{criterion.weight:g}: {note}")
        if criterion.cap is not None and fraction == 0:
            caps.append((criterion.cap, criterion.label))
    total = sum(c.weight for c in criteria)
    score = math.floor(1 + 9 * earned / total + 0.5)
    if caps and min(caps)[0] < score:
        score = min(caps)[0]
        notes.append(f"capped at {score} ({min(caps)[1]})")
    return RubricScore(score, "; ".join(notes))
