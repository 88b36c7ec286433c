"""Per-cell medians of a run's results (pure): the numbers `mpibench show` prints and the plots draw."""

from __future__ import annotations

import math
import statistics
from collections import defaultdict
from dataclasses import dataclass

CELL_METRICS = ("e2e_s", "decode_tok_s", "ttft_s", "prefill_tok_s", "tpot_s", "generated_tokens")


@dataclass(frozen=True)
class Cell:
    """All repetitions of one (model, prompt, threads) cell."""

    model: str
    prompt_id: str
    threads: int
    runs: int
    failed: int
    medians: dict  # metric -> median over successful runs (NaN if none)


def _median(values) -> float:
    finite = [v for v in values if not math.isnan(v)]
    return statistics.median(finite) if finite else float("nan")


def cells(records: list[dict]) -> list[Cell]:
    groups: dict[tuple, list[dict]] = defaultdict(list)
    for record in records:
        groups[(record["model"], record["prompt_id"], record["threads"])].append(record)
    result = []
    for (model, prompt_id, threads), rows in groups.items():
        ok = [r for r in rows if r["status"] == "ok"]
        medians = {m: _median([float(r[m]) for r in ok]) for m in CELL_METRICS}
        result.append(Cell(model, prompt_id, threads, len(rows), len(rows) - len(ok), medians))
    return sorted(result, key=lambda c: (c.model, c.prompt_id, c.threads))


def speedups(all_cells: list[Cell], metric: str = "e2e_s") -> dict[tuple[str, str, int], float]:
    """Speedup of each cell over the same model and prompt at its smallest thread count, by `metric` time."""
    base: dict[tuple[str, str], Cell] = {}
    for cell in all_cells:
        key = (cell.model, cell.prompt_id)
        if key not in base or cell.threads < base[key].threads:
            base[key] = cell
    return {
        (c.model, c.prompt_id, c.threads): base[(c.model, c.prompt_id)].medians[metric] / c.medians[metric]
        for c in all_cells
    }


def _fmt(value: float, digits: int) -> str:
    return "-" if math.isnan(value) else f"{value:.{digits}f}"


def format_table(all_cells: list[Cell]) -> str:
    header = ("model", "prompt", "threads", "runs", "failed", "e2e s", "decode tok/s", "TTFT s", "tokens", "speedup")
    speedup = speedups(all_cells)
    rows = [header] + [
        (c.model, c.prompt_id, str(c.threads), str(c.runs), str(c.failed), _fmt(c.medians["e2e_s"], 2),
         _fmt(c.medians["decode_tok_s"], 1), _fmt(c.medians["ttft_s"], 3),
         _fmt(c.medians["generated_tokens"], 0), _fmt(speedup[(c.model, c.prompt_id, c.threads)], 2))
        for c in all_cells
    ]
    widths = [max(len(r[i]) for r in rows) for i in range(len(header))]
    lines = ["  ".join(v.ljust(w) if i < 2 else v.rjust(w) for i, (v, w) in enumerate(zip(r, widths))) for r in rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)
