"""The plots of a load run (mpibench load): TTFT and TPOT (p50, p99) against achieved output tok/s, achieved against
offered rate, per-user against aggregate tok/s, one curve per server configuration; and per configuration, a
timeline of each of its points.

A curve's points go in order of load (users; a configuration's open-loop points, by rate, on a line of their own).
Hollow markers: points that broke a validity rule (their numbers are shown, not trusted); a black-edged star: the
configuration's knee. Bars: the percentile's distribution-free 95 % interval. Drawn by analysis.plots when a results
file has load points.
"""

from __future__ import annotations

import math
from collections import defaultdict
from pathlib import Path

from analysis.figures import MARKERS, Figures, footnote, new_figure, save, slug, wrapped
from mpibench.load.labels import configuration, load, several_models
from mpibench.store.hdf5 import Results

LATENCIES = (("ttft", "time to first token"), ("tpot", "time per output token"))
AGGREGATE = "achieved output tokens/s (all users)"
VALIDITY_NOTE = "hollow: invalid point (a validity rule broken); star: the configuration's knee"
TIMELINE = (("arrived", "arrived /s", "-"), ("completed", "completed /s", "-"), ("in_system", "in system", "--"),
            ("queued", "queued", ":"))


def configurations(points: list[dict]) -> dict[str, list[dict]]:
    """Server configuration (with the model where the run has several) -> its points in order of load."""
    with_model = several_models(points)
    by_config: dict[str, list[dict]] = defaultdict(list)
    for point in points:
        by_config[configuration(point, with_model)].append(point)
    return {name: sorted(mine, key=lambda p: (p["mode"], p["users"], p["rate"], p["point"]))
            for name, mine in sorted(by_config.items())}


def _finite(*values: float) -> bool:
    return all(isinstance(v, (int, float)) and math.isfinite(v) for v in values)


def _curve(ax, points: list[dict], x, y, index: int, label: str | None, bounds=None, ls: str = "-") -> None:
    """One configuration's points (x(point), y(point) where both are finite) joined in order of load (closed and
    open loops apart), with bars from bounds(point) -> (low, high), hollow where invalid, the knee starred."""
    shown = [p for p in points if _finite(x(p), y(p))]
    if not shown:
        return
    color, marker = f"C{index % 10}", MARKERS[index % len(MARKERS)]
    xs, ys = [x(p) for p in shown], [y(p) for p in shown]
    for mode in sorted({p["mode"] for p in shown}):
        mine = [p for p in shown if p["mode"] == mode]
        ax.plot([x(p) for p in mine], [y(p) for p in mine], ls=ls, color=color, label=label)
        label = None
    if bounds:
        lows, highs = zip(*(bounds(p) for p in shown))
        ax.errorbar(xs, ys, yerr=[[max(0.0, v - lo) if _finite(lo) else 0.0 for v, lo in zip(ys, lows)],
                                  [max(0.0, hi - v) if _finite(hi) else 0.0 for v, hi in zip(ys, highs)]],
                    fmt="none", ecolor=color, capsize=2, alpha=0.6)
    for p, px, py in zip(shown, xs, ys):
        ax.plot(px, py, marker=marker, color=color, markersize=6, mfc=color if p["valid"] else "white", ls="none")
        if p["knee"]:
            ax.plot(px, py, marker="*", markersize=17, mfc="none", mec="black", ls="none")


def _log_if_wide(ax, values: list[float]) -> None:
    """A log y axis when the values span more than 20x (latency under overload)."""
    values = [v for v in values if _finite(v) and v > 0]
    if values and max(values) > 20 * min(values):
        ax.set_yscale("log")


def _legend(fig, ax, extra: str = "") -> None:
    handles, labels = ax.get_legend_handles_labels()
    fig.legend(handles, labels, loc="outside upper center", ncols=min(4, len(labels)), fontsize=7)
    footnote(fig, wrapped(VALIDITY_NOTE + extra, 150))


def latency_figure(by_config: dict[str, list[dict]], path: Path) -> Path:
    """p50 (solid) and p99 (dashed) TTFT and TPOT against achieved output tok/s."""
    fig, axes = new_figure(len(LATENCIES), height=3.6)
    for ax, (metric, what) in zip(axes, LATENCIES):
        for i, (name, points) in enumerate(by_config.items()):
            for q, ls in (("p50", "-"), ("p99", "--")):
                _curve(ax, points, lambda p: p["output_tok_s"], lambda p, c=f"{metric}_{q}_s": p[c], i,
                       f"{name} {q}" if ax is axes[0] else None,
                       lambda p, c=f"{metric}_{q}": (p[f"{c}_lo_s"], p[f"{c}_hi_s"]), ls)
        _log_if_wide(ax, [p[f"{metric}_{q}_s"] for ps in by_config.values() for p in ps for q in ("p50", "p99")])
        slos = {p[f"slo_{metric}_s"] for ps in by_config.values() for p in ps if _finite(p[f"slo_{metric}_s"])}
        for slo in sorted(slos):
            ax.axhline(slo, color="grey", ls=":", lw=1)
            ax.annotate(f"SLO {slo * 1e3:g} ms", (0.01, slo), xycoords=("axes fraction", "data"), fontsize=7,
                        color="grey", va="bottom")
        ax.set(xlabel=AGGREGATE, ylabel=f"{what} (s)", title=f"{what} against throughput")
        ax.grid(alpha=0.3)
    _legend(fig, axes[0], "; solid p50, dashed p99 (none under 300 completions); bars: distribution-free 95 % "
                          "interval of the percentile; dotted: the SLO")
    return save(fig, path)


def rate_figure(by_config: dict[str, list[dict]], path: Path) -> Path:
    """Achieved against offered requests/s, with the line where they are equal."""
    fig, (ax,) = new_figure(1, height=4.0)
    for i, (name, points) in enumerate(by_config.items()):
        _curve(ax, points, lambda p: p["offered_rps"], lambda p: p["achieved_rps"], i, name)
    rates = [p[c] for ps in by_config.values() for p in ps for c in ("offered_rps", "achieved_rps") if _finite(p[c])]
    ax.plot([0, max(rates)], [0, max(rates)], "k:", lw=1, label="achieved = offered")
    ax.set(xlabel="offered requests/s", ylabel="achieved requests/s", title="achieved against offered rate")
    ax.grid(alpha=0.3)
    _legend(fig, ax, "; under the dotted line the node did not keep up")
    return save(fig, path)


def per_user_figure(by_config: dict[str, list[dict]], path: Path) -> Path:
    """Per-user decode speed (1 / median TPOT) against aggregate output tok/s, each point labelled with its load."""
    fig, (ax,) = new_figure(1, height=4.0)
    def per_user(p: dict) -> float:
        return 1 / p["tpot_p50_s"] if _finite(p["tpot_p50_s"]) and p["tpot_p50_s"] > 0 else math.nan
    def bounds(p: dict) -> tuple[float, float]:  # 1/x turns the TPOT interval round
        lo, hi = p["tpot_p50_lo_s"], p["tpot_p50_hi_s"]
        return (1 / hi if _finite(hi) and hi > 0 else math.nan, 1 / lo if _finite(lo) and lo > 0 else math.nan)
    for i, (name, points) in enumerate(by_config.items()):
        _curve(ax, points, lambda p: p["output_tok_s"], per_user, i, name, bounds)
        for p in points:
            if _finite(p["output_tok_s"], per_user(p)):
                ax.annotate(load(p), (p["output_tok_s"], per_user(p)), textcoords="offset points", xytext=(5, 4),
                            fontsize=6, color=f"C{i % 10}")
    ax.set(xlabel=AGGREGATE, ylabel="tokens/s each user sees (1 / median TPOT)",
           title="per-user against aggregate throughput")
    ax.grid(alpha=0.3)
    _legend(fig, ax, "; bars: from the median TPOT's 95 % interval")
    return save(fig, path)


def _steady_span(requests: list[dict]) -> tuple[float, float] | None:
    """The first and last intended start of the steady window's requests, s from t0."""
    starts = [r["intended_ns"] / 1e9 for r in requests if r["phase"] == "steady"]
    return (min(starts), max(starts)) if starts else None


def timeline_figure(name: str, points: list[dict], bins: dict[int, list[dict]], requests: dict[int, list[dict]],
                    path: Path) -> Path:
    """A panel per point: arrivals and completions per second, requests in the system and queued, the steady
    window shaded."""
    fig, axes = new_figure(len(points), height=2.6)
    for ax, point in zip(axes, points):
        rows = sorted(bins.get(point["point"], []), key=lambda b: b["t_s"])
        span = _steady_span(requests.get(point["point"], []))
        if span:
            ax.axvspan(*span, color="0.9", label="steady window")
        edges = [b["t_s"] for b in rows] + [rows[-1]["t_s"] + 1] if rows else []
        for column, label, ls in TIMELINE:  # each bin's value held to its end
            values = [b[column] for b in rows]
            ax.step(edges, values + values[-1:], where="post", ls=ls, label=label)
        ax.set_title(f"{name}, {load(point)}" + ("" if point["valid"] else " (invalid)"), fontsize=9)
        ax.set(xlabel="s from the point's start", ylabel="requests")
        ax.grid(alpha=0.3)
    handles, labels = axes[0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="outside upper center", ncols=len(labels), fontsize=7)
    footnote(fig, "1-second bins from each point's start; in system and queued: at the bin's end; shaded: the "
                  "intended starts of the steady window's requests")
    return save(fig, path)


def load_figures(results: Results, out: Path) -> Figures:
    """Every load plot that can inform, into `out`; the files written and why each other was left out."""
    by_config = configurations(results.load_points)
    paths, skipped = [], []

    def draw(name: str, shown: int, what: str, drawer) -> None:
        if shown < 2:
            skipped.append(f"{name}: {'one load point' if shown else 'no load point'} with {what}; nothing to compare")
        else:
            paths.append(drawer(out / f"{name}.png"))

    def count(*columns: str) -> int:
        return sum(_finite(*(p[c] for c in columns)) for p in results.load_points)

    draw("load_latency_vs_throughput", count("output_tok_s", "ttft_p50_s"), "a latency and a throughput",
         lambda path: latency_figure(by_config, path))
    draw("load_achieved_vs_offered", count("offered_rps", "achieved_rps"), "an offered and an achieved rate",
         lambda path: rate_figure(by_config, path))
    draw("load_per_user_vs_aggregate", count("output_tok_s", "tpot_p50_s"), "a TPOT and a throughput",
         lambda path: per_user_figure(by_config, path))
    bins, requests = defaultdict(list), defaultdict(list)
    for row in results.timeline:
        bins[row["point"]].append(row)
    for row in results.requests:
        requests[row["point"]].append(row)
    for name, points in by_config.items():
        if any(p["point"] in bins for p in points):
            paths.append(timeline_figure(name, points, bins, requests, out / f"load_timeline_{slug(name)}.png"))
        else:
            skipped.append(f"load_timeline_{slug(name)}: no timeline rows for its points")
    return Figures(paths, skipped)
