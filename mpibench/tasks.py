"""Expand a sweep into frozen Task records with stable ids."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

from mpibench.config import SweepConfig


@dataclass(frozen=True)
class Task:
    """One measurement: a prompt on a model with a thread count, one repetition."""

    id: str
    index: int
    model: str
    prompt_id: str
    threads: int
    repetition: int

    @property
    def group(self) -> tuple[str, int]:
        """Tasks of one group share a runner: the model is loaded once for them."""
        return (self.model, self.threads)


def task_id(model: str, prompt_id: str, threads: int, repetition: int) -> str:
    """Stable id of a cell (model, prompt, threads) and repetition."""
    key = f"{model}\x1f{prompt_id}\x1f{threads}\x1f{repetition}"
    return hashlib.sha256(key.encode()).hexdigest()[:16]


def expand(config: SweepConfig, threads: tuple[int, ...]) -> tuple[Task, ...]:
    """All tasks of the sweep, grouped by (model, threads); prompts interleave within each repetition."""
    tasks = []
    for model in config.models:
        for t in threads:
            for rep in range(config.repetitions):
                for prompt in config.prompts:
                    tid = task_id(model.name, prompt.id, t, rep)
                    tasks.append(Task(tid, len(tasks), model.name, prompt.id, t, rep))
    return tuple(tasks)
