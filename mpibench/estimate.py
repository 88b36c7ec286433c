"""What a dry run prints (`mpibench run --dry-run`): the planned cells, and how long the sweep should take
from earlier runs of the same cells.

An earlier task matches a planned one when it measured the same thing: the same model file (path and size),
kind, prompt text (or bench test), thread count, max_tokens and n_ctx. A planned task is estimated at the
median end-to-end time of its cell's earlier successful tasks, and each (model, threads) group adds the median
start of its runner (process, import, model load) once. A node runs one task at a time, so the sweep takes
about the sum divided by the nodes that run tasks, when they share the work evenly.
"""

from __future__ import annotations

import json
import math
import statistics
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

from mpibench.config import SweepConfig
from mpibench.models import ModelInfo
from mpibench.progress import format_eta
from mpibench.table import counted, table_lines
from mpibench.tasks import Task


@dataclass(frozen=True)
class History:
    """Earlier durations: per cell key the end-to-end times, per (model file, threads) the runner starts, and
    the runs each cell key came from."""

    durations: dict[tuple, list[float]]
    starts: dict[tuple, list[float]]
    sources: dict[tuple, set[str]]


@dataclass(frozen=True)
class Estimate:
    seconds: float  # the whole sweep, its tasks shared evenly by `nodes`
    known: int  # planned tasks whose cell was measured before
    total: int
    nodes: int
    sources: tuple[str, ...]  # the earlier runs the figures come from
    cell_s: dict[tuple[str, str, int], float]  # (model, prompt or test, threads) -> median e2e seconds


def _key(model_file: tuple, kind: str, item: str, threads: int, max_tokens: int, n_ctx: int) -> tuple:
    return (model_file, kind, item, threads, max_tokens if kind == "query" else 0, n_ctx)


def history(runs: list[tuple[Path, dict, list[dict]]]) -> History:
    """What earlier runs (rundir.previous_runs) measured, by cell key."""
    durations, starts, sources = defaultdict(list), defaultdict(list), defaultdict(set)
    for run_dir, header, records in runs:
        try:
            config = json.loads(header["config_json"])
            models = {m["name"]: (m["path"], m["size_bytes"]) for m in header["models"]}
            texts = {p["id"]: p["text"] for p in header["prompts"]}
        except (KeyError, TypeError, ValueError):
            continue  # a header from another tool or version: it cannot be matched
        for r in records:
            if r.get("status") != "ok" or r.get("model") not in models or not math.isfinite(r.get("e2e_s", math.nan)):
                continue
            kind = r.get("kind", "query")
            item = texts.get(r["prompt_id"], "") if kind == "query" else r["prompt_id"]
            key = _key(models[r["model"]], kind, item, r["threads"], config.get("max_tokens"), config.get("n_ctx"))
            durations[key].append(r["e2e_s"])
            sources[key].add(str(run_dir))
            if math.isfinite(r.get("runner_start_s", math.nan)):
                starts[(models[r["model"]], r["threads"])].append(r["runner_start_s"])
    return History(dict(durations), dict(starts), dict(sources))


def estimate(config: SweepConfig, models: dict[str, ModelInfo], tasks: list[Task], nodes: int,
             past: History) -> Estimate:
    """The planned tasks' duration from `past`; tasks of cells never measured are left out (known < total)."""
    texts = {p.id: p.text for p in config.prompts}
    total, known, cell_s, groups, sources = 0.0, 0, {}, set(), set()
    for task in tasks:
        model_file = (models[task.model].path, models[task.model].size_bytes)
        item = texts[task.prompt_id] if task.kind == "query" else task.prompt_id
        key = _key(model_file, task.kind, item, task.threads, config.max_tokens, config.n_ctx)
        if key not in past.durations:
            continue
        cell_s[(task.model, task.prompt_id, task.threads)] = seconds = statistics.median(past.durations[key])
        total, known = total + seconds, known + 1
        sources |= past.sources[key]
        if (model_file, task.threads) not in groups and (model_file, task.threads) in past.starts:
            groups.add((model_file, task.threads))
            total += statistics.median(past.starts[(model_file, task.threads)])
    return Estimate(total / max(nodes, 1), known, len(tasks), nodes, tuple(sorted(sources)), cell_s)


def dry_run_lines(config: SweepConfig, models: dict[str, ModelInfo], tasks: list[Task], nodes: int, past: History,
                  folder: Path) -> list[str]:
    """The planned cells (tasks, warmups, earlier median time) and the estimate, or why there is none."""
    guess = estimate(config, models, tasks, nodes, past)
    cells: dict[tuple[str, str, int], list[Task]] = {}
    for task in tasks:
        cells.setdefault((task.model, task.prompt_id, task.threads), []).append(task)
    rows = [("model", "prompt" if config.kind == "query" else "test", "threads", "reps", "warmups", "earlier e2e s")]
    for key, mine in cells.items():
        warm, seconds = sum(t.warmup for t in mine), guess.cell_s.get(key)
        rows.append((key[0], key[1], str(key[2]), str(len(mine) - warm), str(warm),
                     "-" if seconds is None else f"{seconds:.3f}"))
    lines = [f"dry run: nothing is measured or written; {counted(len(tasks), 'task')} in "
             f"{counted(len(cells), 'cell')}, one task at a time on each of {counted(nodes, 'node')}",
             *table_lines(rows)]
    if not guess.known:
        return lines + [f"estimate: none; no run in {folder}/ measured these cells (same model file, prompt or test, "
                        "threads, max_tokens and n_ctx)"]
    unknown = guess.total - guess.known
    names = ", ".join(Path(s).name for s in guess.sources[:3]) + (", ..." if len(guess.sources) > 3 else "")
    return lines + [f"estimate: about {format_eta(guess.seconds)} for {'all' if not unknown else guess.known} of "
                    f"{counted(guess.total, 'task')}" + (f" ({unknown} never measured before)" if unknown else "")
                    + f", from the medians of {counted(len(guess.sources), 'earlier run')} in {folder}/ ({names})"]
