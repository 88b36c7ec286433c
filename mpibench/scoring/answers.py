"""Distinct answers of a run: identical text to the same prompt is judged and graded once, scored for every task."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass


@dataclass(frozen=True)
class DistinctAnswer:
    answer_id: str  # stable: a hash of the prompt id and the text, so it reveals nothing about the model
    prompt_id: str
    answer: str
    task_ids: tuple[str, ...]
    models: tuple[str, ...]
    threads: tuple[int, ...]


def answer_id(prompt_id: str, answer: str) -> str:
    return hashlib.sha256(f"{prompt_id}\x1f{answer}".encode("utf-8")).hexdigest()[:12]


def distinct_answers(records: list[dict]) -> list[DistinctAnswer]:
    """One entry per (prompt, answer text) over the successful tasks, in task order."""
    groups: dict[str, list[dict]] = {}
    for record in sorted(records, key=lambda r: r["index"]):
        if record["status"] == "ok":
            groups.setdefault(answer_id(record["prompt_id"], record["answer"]), []).append(record)
    return [
        DistinctAnswer(aid, rows[0]["prompt_id"], rows[0]["answer"], tuple(r["task_id"] for r in rows),
                       tuple(sorted({r["model"] for r in rows})), tuple(sorted({r["threads"] for r in rows})))
        for aid, rows in groups.items()
    ]
