"""Expand a sweep into frozen Task records with stable ids."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

from mpibench.config import SweepConfig, bench_tests, warmup_runs


@dataclass(frozen=True)
class Task:
    """One measurement: a prompt (or, for kind "bench", a ppN/tgN test) on a model with a thread count,
    one repetition; warmups have negative repetitions."""

    id: str
    index: int
    model: str
    prompt_id: str
    threads: int
    repetition: int
    kind: str = "query"

    @property
    def warmup(self) -> bool:
        return self.repetition < 0

    @property
    def group(self) -> tuple[str, int]:
        """Tasks of one group share a runner: the model is loaded once for them."""
        return (self.model, self.threads)


def task_id(model: str, prompt_id: str, threads: int, repetition: int, kind: str = "query") -> str:
    """Stable id of a cell (model, prompt or test, threads) and repetition."""
    key = f"{model}\x1f{prompt_id}\x1f{threads}\x1f{repetition}" + ("" if kind == "query" else f"\x1f{kind}")
    return hashlib.sha256(key.encode()).hexdigest()[:16]


def expand(config: SweepConfig, threads: tuple[int, ...]) -> tuple[Task, ...]:
    """All tasks of the sweep, grouped by (model, threads): the group's warmups first, then its repetitions,
    prompts (or tests) interleaved within each."""
    items = bench_tests(config) if config.kind == "bench" else tuple(p.id for p in config.prompts)
    tasks = []
    for model in config.models:
        for t in threads:
            for rep in range(-warmup_runs(config), config.repetitions):
                for item in items:
                    tid = task_id(model.name, item, t, rep, config.kind)
                    tasks.append(Task(tid, len(tasks), model.name, item, t, rep, config.kind))
    return tuple(tasks)
