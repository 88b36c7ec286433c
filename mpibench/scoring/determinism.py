"""Determinism across thread counts: under greedy decoding, are a model's answers to a prompt byte-identical at
every thread count (and repetition), and if not, where does each first diverge from the reference answer?

The reference is the answer at the fewest threads, first repetition. Divergence is located by character offset
(and line:column) in the answer text; results do not keep token ids, so a token index cannot be given.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass

from mpibench.table import table_lines

CONTEXT = 24


@dataclass(frozen=True)
class Divergence:
    threads: int
    repetition: int
    offset: int  # first differing character (the shorter length when one answer is a prefix of the other)
    line: int
    column: int
    reference: str  # a few characters of each answer from the divergence on
    other: str


@dataclass(frozen=True)
class CellDeterminism:
    model: str
    prompt_id: str
    threads: tuple[int, ...]
    answers: int
    reference_threads: int
    divergences: tuple[Divergence, ...]

    @property
    def identical(self) -> bool:
        return not self.divergences


def first_difference(a: str, b: str) -> int | None:
    """Offset of the first differing character, None when the strings are equal."""
    if a == b:
        return None
    return next((i for i, (x, y) in enumerate(zip(a, b)) if x != y), min(len(a), len(b)))


def check(records: list[dict]) -> list[CellDeterminism]:
    """One entry per (model, prompt) over its successful tasks."""
    groups: dict[tuple[str, str], list[dict]] = defaultdict(list)
    for record in records:
        if record["status"] == "ok":
            groups[(record["model"], record["prompt_id"])].append(record)
    cells = []
    for (model, prompt), rows in sorted(groups.items()):
        rows.sort(key=lambda r: (r["threads"], r["repetition"]))
        reference = rows[0]["answer"]
        divergences = []
        for row in rows[1:]:
            offset = first_difference(reference, row["answer"])
            if offset is not None:
                line = reference.count("\n", 0, offset) + 1
                column = offset - (reference.rfind("\n", 0, offset) + 1) + 1
                divergences.append(Divergence(row["threads"], row["repetition"], offset, line, column,
                                              reference[offset:offset + CONTEXT], row["answer"][offset:offset + CONTEXT]))
        cells.append(CellDeterminism(model, prompt, tuple(sorted({r["threads"] for r in rows})), len(rows),
                                     rows[0]["threads"], tuple(divergences)))
    return cells


def format_report(cells: list[CellDeterminism]) -> str:
    header = ("model", "prompt", "threads", "answers", "identical", "first divergence from the fewest threads")
    rows = [header]
    for c in cells:
        first = c.divergences[0] if c.divergences else None
        where = "-" if first is None else (
            f"t={first.threads} rep {first.repetition} vs t={c.reference_threads} rep 0 at char {first.offset} "
            f"(line {first.line}, col {first.column}): "
            f"{first.reference!r} vs {first.other!r}" + (f" (+{len(c.divergences) - 1} more)" if len(c.divergences) > 1 else ""))
        rows.append((c.model, c.prompt_id, ",".join(map(str, c.threads)), str(c.answers),
                     "yes" if c.identical else "no", where))
    lines = table_lines(rows, left=len(header), ragged_last=True)
    same = sum(c.identical for c in cells)
    multi = [c for c in cells if len(c.threads) > 1]
    lines.append(f"\n{same}/{len(cells)} (model, prompt) cells give byte-identical answers at every thread count and "
                 f"repetition ({len(multi)} cells were run at more than one thread count)")
    return "\n".join(lines)
