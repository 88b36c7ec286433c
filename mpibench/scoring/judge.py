"""LLM-as-judge: an MT-Bench-style single-answer grading prompt, and the `[[N]]` rating parsed from the reply.

The judging itself is an ordinary sweep (the judge model on these prompts), run by scoring/command.py.
A reply without exactly one rating from 1 to 10 is recorded as unparsable (NaN), never guessed.
"""

from __future__ import annotations

import math
import re

from mpibench.prompts import Prompt
from mpibench.scoring.answers import DistinctAnswer
from mpibench.store.scores import Score, answer_sha

JUDGE_VERSION = "mt-bench-single-v1"
# MT-Bench's "single-v1" judge prompt (Zheng et al. 2023, FastChat llm_judge/data/judge_prompts.jsonl).
JUDGE_TEMPLATE = (
    "[Instruction]\n"
    "Please act as an impartial judge and evaluate the quality of the response provided by an AI assistant to "
    "the user question displayed below. Your evaluation should consider factors such as the helpfulness, "
    "relevance, accuracy, depth, creativity, and level of detail of the response. Begin your evaluation by "
    "providing a short explanation. Be as objective as possible. After providing your explanation, you must "
    "rate the response on a scale of 1 to 10 by strictly following this format: \"[[rating]]\", for example: "
    "\"Rating: [[5]]\".\n\n"
    "[Question]\n{question}\n\n"
    "[The Start of Assistant's Answer]\n{answer}\n[The End of Assistant's Answer]"
)
RATING = re.compile(r"\[\[\s*(\d+(?:\.\d+)?)\s*\]\]")
RATIONALE_CHARS = 600


def judge_prompt(question: str, answer: str) -> str:
    return JUDGE_TEMPLATE.replace("{question}", question).replace("{answer}", answer)


def judge_prompts(answers: list[DistinctAnswer], questions: dict[str, str]) -> tuple[Prompt, ...]:
    """One judge prompt per distinct answer; its prompt id is the answer id."""
    return tuple(Prompt(a.answer_id, judge_prompt(questions[a.prompt_id], a.answer), "judge") for a in answers)


def parse_rating(judgement: str) -> tuple[float, str]:
    """(rating, rationale); NaN and the reason when the reply has no single rating from 1 to 10."""
    text = " ".join(judgement.split())
    values = {float(v) for v in RATING.findall(judgement)}
    if not values:
        return math.nan, f"unparsable: no [[rating]] in the judgement: {text[:RATIONALE_CHARS]}"
    if len(values) > 1:
        listed = ", ".join(f"{v:g}" for v in sorted(values))
        return math.nan, f"unparsable: several ratings ({listed}): {text[:RATIONALE_CHARS]}"
    (value,) = values
    if not 1 <= value <= 10:
        return math.nan, f"unparsable: rating {value:g} is outside 1-10: {text[:RATIONALE_CHARS]}"
    return value, text[:RATIONALE_CHARS]


def judge_scores(answers: list[DistinctAnswer], judged: dict[str, dict]) -> list[Score]:
    """Scores for every task from the judge run's records (keyed by prompt id = answer id)."""
    scores = []
    for answer in answers:
        record = judged.get(answer.answer_id)
        if record is None:
            rating, rationale = math.nan, "not judged: the judge run has no result for this answer"
        elif record["status"] != "ok":
            rating, rationale = math.nan, f"judge task failed: {record['error'][:RATIONALE_CHARS]}"
        else:
            rating, rationale = parse_rating(record["answer"])
        scores += [Score(t, answer_sha(answer.answer), rating, rationale) for t in answer.task_ids]
    return scores
