"""Plain-text tables (pure): what `show`, `score` and `determinism` print."""

from __future__ import annotations


def table_lines(rows: list[tuple[str, ...]], left: int = 2, ragged_last: bool = False) -> list[str]:
    """The lines of a table whose first row is its header, with a rule of dashes under it: columns padded to
    their widest entry, the first `left` left-aligned and the others right-aligned. With `ragged_last` the last
    column (long free text) is neither padded nor measured: its rule is as wide as its header."""
    measured = len(rows[0]) - 1 if ragged_last else len(rows[0])
    widths = [max(len(r[i]) for r in rows) for i in range(measured)]
    lines = ["  ".join([v.ljust(w) if i < left else v.rjust(w) for i, (v, w) in enumerate(zip(r, widths))]
                       + ([r[-1]] if ragged_last else [])) for r in rows]
    lines.insert(1, "  ".join("-" * w for w in widths + ([len(rows[0][-1])] if ragged_last else [])))
    return lines
