"""Plain-text output (pure): the tables `show`, `score` and `determinism` print, as text or Markdown, and
counted nouns ("1 task", "2 tasks")."""

from __future__ import annotations


def table_lines(rows: list[tuple[str, ...]], left: int = 2, ragged_last: bool = False,
                markdown: bool = False) -> list[str]:
    """The lines of a table whose first row is its header, with a rule of dashes under it: columns padded to
    their widest entry, the first `left` left-aligned and the others right-aligned. With `ragged_last` the last
    column (long free text) is neither padded nor measured: its rule is as wide as its header. With `markdown`,
    a Markdown table (pipes, and a rule that right-aligns the columns after the first `left`)."""
    if markdown:
        escaped = [[v.replace("|", "\\|") for v in r] for r in rows]
        rule = ["---" if i < left else "---:" for i in range(len(rows[0]))]
        return ["| " + " | ".join(r) + " |" for r in [escaped[0], rule, *escaped[1:]]]
    measured = len(rows[0]) - 1 if ragged_last else len(rows[0])
    widths = [max(len(r[i]) for r in rows) for i in range(measured)]
    lines = ["  ".join([v.ljust(w) if i < left else v.rjust(w) for i, (v, w) in enumerate(zip(r, widths))]
                       + ([r[-1]] if ragged_last else [])) for r in rows]
    lines.insert(1, "  ".join("-" * w for w in widths + ([len(rows[0][-1])] if ragged_last else [])))
    return lines


def counted(n: int, noun: str, plural: str | None = None) -> str:
    """`n` and the noun, plural unless n is 1: counted(1, "model") is "1 model", counted(2, "rep") "2 reps"."""
    return f"{n} {noun if n == 1 else plural or noun + 's'}"
