"""What every plot shares: the one saver, curves with interval bars dodged apart, the footnote saying what the bars
are, and the record of what was drawn and what was skipped (and why)."""

from __future__ import annotations

import math
import re
import textwrap
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from mpibench.stats import Stats  # noqa: E402

DPI = 110
WIDTH = 8.2  # inches: about 900 px at DPI, the report's width
MARKERS = "osD^vPX*<>"
DODGE = 0.06  # each curve's x shift, as a share of the smallest gap between thread counts


@dataclass(frozen=True)
class Figures:
    """The PNG files written, and one sentence per plot left out ("name: why")."""

    paths: list[Path]
    skipped: list[str]


def save(fig, path: Path) -> Path:
    """Write the figure as PNG, nothing clipped, and close it."""
    fig.savefig(path, dpi=DPI, bbox_inches="tight")
    plt.close(fig)
    return path


def slug(name: str) -> str:
    """A filename-safe form of a model or scorer name."""
    return re.sub(r"[^\w.-]+", "-", name).strip("-") or "unnamed"


def wrapped(text: str, width: int = 50) -> str:
    """Long names (a series with its engine configuration) on several lines, so that no figure outgrows its width."""
    return "\n".join(textwrap.wrap(text, width)) or text


def new_figure(panels: int, columns: int = 2, height: float = 3.3, **kw):
    """A figure of `panels` axes in up to `columns` columns at report width, constrained layout; the axes flat,
    the unused ones hidden."""
    columns = min(columns, panels)
    rows = -(-panels // columns)
    fig, axes = plt.subplots(rows, columns, figsize=(WIDTH, height * rows), squeeze=False, layout="constrained", **kw)
    for ax in axes.flat[panels:]:
        ax.set_visible(False)
    return fig, list(axes.flat[:panels])


def bar(s: Stats) -> tuple[float, float]:
    """Lengths below and above the median of its confidence interval; 0 where there is none (n < 2)."""
    if s.n < 2 or math.isnan(s.ci_low):
        return 0.0, 0.0
    return s.median - s.ci_low, s.ci_high - s.median


def dodge(index: int, count: int, xs: Iterable[float]) -> float:
    """The x shift of curve `index` of `count`, so that curves on the same values stay apart."""
    values = sorted(set(xs))
    gap = min((b - a for a, b in zip(values, values[1:])), default=values[0] if values else 1)
    return (index - (count - 1) / 2) * min(DODGE, 0.5 / count) * gap


def curve(ax, xs: Sequence[float], ys: Sequence[float], below: Sequence[float], above: Sequence[float],
          index: int, count: int, all_xs: Iterable[float], **kw) -> None:
    """One curve with its interval bars, shifted and marked as curve `index` of `count`."""
    shift = dodge(index, count, all_xs)
    ax.errorbar([x + shift for x in xs], ys, yerr=[below, above], marker=MARKERS[index % len(MARKERS)],
                capsize=3, markersize=5, **kw)


def ci_note(stats: Iterable[Stats], what: str = "bars: 95 % CI of the median") -> str:
    """The footnote saying what the bars are, where n < 6 made them [min, max] at lower coverage, and that a single
    run has none."""
    stats = list(stats)
    low = sorted({(s.n, s.ci_level) for s in stats if 2 <= s.n and s.ci_level < 0.95})
    if low:
        what += "; n<6: min-max, covering less (" + ", ".join(f"{100 * c:.0f} % at n={n}" for n, c in low) + ")"
    if any(s.n == 1 for s in stats):
        what += "; n=1: no bar"
    return what


def footnote(fig, text: str) -> None:
    fig.text(0.0, -0.01, text, fontsize=7, ha="left", va="top", color="0.3")
