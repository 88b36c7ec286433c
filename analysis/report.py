"""The report of a run: report.html (one self-contained file, figures embedded) and report.md (figures as links).

Usage: python -m analysis.report results/<run-id>/results.h5 [--out DIR]
Both files render one list of sections, built once from the results file, so they never drift apart: the study's
answers, the tables, the figures, data quality, and the run (hosts, software, MPI, launch, configuration); a load
run's section (its points, the knee of each server configuration, the validity rules broken, its plots) instead of
the task sections when it has no tasks.
"""

from __future__ import annotations

import argparse
import base64
import csv
import html
import io
import json
import math
import os
import re
import sys
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

from analysis.figures import Figures
from analysis.load_plots import configurations
from analysis.plots import figures
from mpibench.export import to_llama_bench_csv
from mpibench.findings import METHOD, answer_sentences
from mpibench.load.labels import configuration, label, load, several_models
from mpibench.load.metrics import KNEE_GOODPUT_SHARE
from mpibench.load.table import fallback_lines
from mpibench.metadata import host_lines, software_line
from mpibench.roofline import bandwidth_lines
from mpibench.stats import CV_LIMIT
from mpibench.store.hdf5 import Results, ResultsFileError, read_results
from mpibench.summary import (
    Cell, cells, contention_warnings, engine_lines, format_ci, format_cv, format_number, speedup_intervals, warnings,
)
from mpibench.table import counted

# A caption per plot, by the start of its file name (plots name some files after a model or scorer).
CAPTIONS = {
    "runtime_vs_threads": "End-to-end time against threads, per model and prompt.",
    "decode_vs_threads": "Decode speed (tokens/s after the first) against threads.",
    "decode_roofline": "Decode speed against threads with its memory roofline (dashed): the node's read bandwidth at "
                       "that thread count / the bytes read per token; each point is labelled with the share reached.",
    "prefill_vs_threads": "Prefill speed (prompt tokens/s) against threads.",
    "ttft_vs_threads": "Time to first token against threads.",
    "speedup_efficiency": "Speedup over the fewest threads, and the parallel efficiency it implies.",
    "runtime_vs_model_size": "End-to-end time against model size, per prompt.",
    "scaling_": "How one model scales with threads.",
    "score_vs_model_size_": "Mean score against model size.",
    "score_vs_threads_": "Mean score against threads: greedy decoding should leave it flat.",
    "quality_vs_cost_": "Quality against cost: mean score against end-to-end time.",
    "load_latency_vs_throughput": "Time to first token and time per output token (p50 solid, p99 dashed) against the "
                                  "achieved output tokens/s, one curve per server configuration; hollow: invalid "
                                  "points; star: the knee.",
    "load_achieved_vs_offered": "Achieved against offered requests/s: below the dotted line the node fell behind.",
    "load_per_user_vs_aggregate": "Tokens/s each user sees (1 / median TPOT) against the aggregate output tokens/s: "
                                  "what batching trades.",
    "load_timeline_": "Each load point second by second: arrivals, completions, requests in the system and queued.",
}
LOAD_PLOT = "load_"  # the start of every load plot's file name


@dataclass(frozen=True)
class Paragraph:
    text: str


@dataclass(frozen=True)
class Items:
    items: tuple[str, ...]


@dataclass(frozen=True)
class Note:
    """A footnote: a label in bold, then its text."""

    label: str
    text: str


@dataclass(frozen=True)
class Table:
    header: tuple[str, ...]
    rows: tuple[tuple[str, ...], ...]
    align: str  # one letter per column: "l" left, "r" right


@dataclass(frozen=True)
class Figure:
    path: Path
    caption: str


@dataclass(frozen=True)
class Code:
    text: str
    language: str = ""


Block = Paragraph | Items | Note | Table | Figure | Code


@dataclass(frozen=True)
class Section:
    title: str
    blocks: tuple[Block, ...]
    level: int = 2  # 1 for the report's title


def _items_or(lines: list[str], otherwise: str) -> Block:
    return Items(tuple(lines)) if lines else Paragraph(otherwise)


def _query_table(query_cells: list[Cell]) -> Table:
    """The query cells: median e2e time with its 95 % CI and CV, decode speed, and speedup with its interval."""
    speedup = speedup_intervals(query_cells)
    rows = []
    for c in query_cells:
        s, e2e = speedup[(c.series, c.prompt_id, c.threads)], c.stats["e2e_s"]
        rows.append((c.series, c.prompt_id, str(c.threads), str(e2e.n), str(c.failed), format_number(e2e.median),
                     format_ci(e2e, None), format_cv(e2e), format_number(c.medians["decode_tok_s"], 1),
                     format_number(s.value, 2),
                     "-" if math.isnan(s.ci_low) else f"{format_number(s.ci_low, 2)}-{format_number(s.ci_high, 2)}"))
    header = ("model", "prompt", "threads", "n", "failed", "e2e s", "e2e 95 % CI", "CV %", "decode tok/s",
              "speedup", "speedup 95 % CI")
    return Table(header, tuple(rows), "llrrrrrrrrr")


def _bench_table(results: Results) -> Table | None:
    """The bench cells as llama-bench's markdown prints them, from the numbers of its CSV export."""
    text, _ = to_llama_bench_csv(results)
    rows = []
    for r in csv.DictReader(io.StringIO(text)):
        size, params = int(r["model_size"]), int(r["model_n_params"])
        rows.append((r["model_type"], f"{size / 2**30:.2f} GiB" if size >= 2**30 else f"{size / 2**20:.2f} MiB",
                     f"{params / 1e9:.2f} B" if params >= 10**9 else f"{params / 1e6:.2f} M", r["backends"],
                     r["n_threads"], f"pp{r['n_prompt']}" if r["n_prompt"] != "0" else f"tg{r['n_gen']}",
                     f"{float(r['avg_ts']):.2f} ± {float(r['stddev_ts']):.2f}"))
    header = ("model", "size", "params", "backend", "threads", "test", "t/s")
    return Table(header, tuple(rows), "lrrlrrr") if rows else None


def _caption(path: Path) -> str:
    prefix = max((p for p in CAPTIONS if path.stem.startswith(p)), key=len, default="")
    return CAPTIONS[prefix] if prefix else path.stem.replace("_", " ")


def _failures(results: Results) -> Block:
    """Tasks that did not succeed, counted by status and reason; then those the run never recorded."""
    counts = Counter((r["status"], " ".join(r["error"].split()) or "no reason recorded")
                     for r in results.results if r["status"] != "ok")
    rows = tuple((status, str(n), reason) for (status, reason), n in counts.most_common())
    unrecorded = int(results.attrs["total_tasks"]) - len(results.results)
    if unrecorded > 0:
        rows += (("not recorded", str(unrecorded), "the run ended before them: mpibench run --resume DIR runs them"),)
    return Table(("status", "tasks", "reason"), rows, "lrl") if rows else Paragraph("Every task succeeded.")


def _model_line(m: dict) -> str:
    synthetic = " Synthetic (mpibench synth, random weights): timing only, never scored." if m.get("synthetic") else ""
    return (f"{m['name']}: {m['architecture']} {m['parameters'] / 1e6:.0f}M parameters {m['quantization']}, "
            f"{m['size_bytes'] / 2**20:.0f} MiB, {m['path']}" + (f", sha256 {m['sha256']}" if m.get("sha256") else "")
            + synthetic)


def _load_table(points: list[dict]) -> Table:
    """One row per load point: its configuration and load, counts, rates, latency percentiles, goodput, flags."""
    with_model = several_models(points)
    rows = []
    for p in sorted(points, key=lambda p: p["point"]):
        rows.append((str(p["point"]), configuration(p, with_model), load(p), str(p["completed"]),
                     str(p["failed"]), *(format_number(p[c]) for c in (
                         "offered_rps", "achieved_rps", "output_tok_s", "ttft_p50_s", "ttft_p99_s", "tpot_p50_s",
                         "tpot_p99_s", "e2e_p99_s", "goodput_rps")),
                     "yes" if p["stable"] else "no", "yes" if p["valid"] else "no", "knee" if p["knee"] else ""))
    header = ("point", "configuration", "load", "completed", "failed", "offered /s", "achieved /s", "output tok/s",
              "TTFT p50 s", "TTFT p99 s", "TPOT p50 s", "TPOT p99 s", "e2e p99 s", "goodput /s", "stable", "valid",
              "knee")
    return Table(header, tuple(rows), "lll" + "r" * (len(header) - 3))


def _knee_lines(points: list[dict]) -> list[str]:
    """A sentence per server configuration: where its knee is, or that it has none."""
    lines = []
    for name, mine in configurations(points).items():
        knee = next((p for p in mine if p["knee"]), None)
        if knee is None:
            lines.append(f"{name}: no knee: none of its {counted(len(mine), 'point')} qualifies.")
            continue
        q = "p99" if math.isfinite(knee["ttft_p99_s"]) else "p50"
        lines.append(f"{name}: the knee is at {load(knee)}: {format_number(knee['achieved_rps'])} requests/s, "
                     f"{format_number(knee['output_tok_s'])} output tokens/s, TTFT {q} "
                     f"{format_number(knee[f'ttft_{q}_s'])} s, TPOT {q} {format_number(knee[f'tpot_{q}_s'])} s, "
                     f"goodput {100 * knee['goodput_share']:.0f} % of its requests.")
    return lines


def _slo_line(points: list[dict]) -> str:
    """The service-level objectives goodput was counted against."""
    def one(p: dict) -> str:
        limits = [f"{what} <= {format_number(p[c])} s" for what, c in (("TTFT", "slo_ttft_s"), ("TPOT", "slo_tpot_s"),
                                                                       ("end-to-end", "slo_e2e_s"))
                  if math.isfinite(p[c])]
        return ", ".join(limits) or "none set (every completion counts)"
    slos = sorted({one(p) for p in points})
    return ("Goodput: requests per second completed within " + "; or ".join(slos) + "; a failed request counts as a miss. "
            f"The knee of a configuration: its largest valid, stable point whose goodput is at least "
            f"{100 * KNEE_GOODPUT_SHARE:.0f} % of its requests.")


def _validity_lines(points: list[dict]) -> list[str]:
    """Each point that broke a validity rule, with the rules, and each whose queue kept growing."""
    with_model = several_models(points)
    lines = []
    for p in sorted(points, key=lambda p: p["point"]):
        name = f"point {p['point']} ({label(p, with_model)})"
        if not p["valid"]:
            lines.append(f"{name}: invalid: {p['invalid_reasons'] or 'no reason recorded'}")
        if not p["stable"]:
            lines.append(f"{name}: unstable: the queue grew {format_number(p['queue_slope'])} requests/s")
    return lines


def _load_sections(results: Results, drawn: Figures) -> list[Section]:
    """A load run: its points, the knee of each configuration, the validity rules broken, its plots."""
    points = results.load_points
    plots = tuple(Figure(p, _caption(p)) for p in drawn.paths if p.stem.startswith(LOAD_PLOT))
    skipped = tuple(s for s in drawn.skipped if s.startswith(LOAD_PLOT))
    fallbacks = tuple(fallback_lines(points))
    return [
        Section("Load test", (Paragraph(
            f"{counted(len(points), 'load point')}: each a server configuration (P runners x S sequences batched "
            f"x T threads) under one load, measured over its steady window. Latencies count from each request's "
            f"intended start, so queueing is in them (no coordinated omission)."),)
            + ((Items(fallbacks),) if fallbacks else ())),
        Section("Load points", (_load_table(points), Note("Columns", (
            "completed, failed: requests of the steady window; rates per second of the window; TTFT, TPOT and e2e: "
            "percentiles over the completed requests (p99 only from 300 completions, else -); goodput: completions "
            "per second within the objectives; stable: the queue did not keep growing; valid: every validity rule "
            "kept."))), 3),
        Section("Knee of each server configuration", (Items(tuple(_knee_lines(points))),
                                                      Paragraph(_slo_line(points))), 3),
        Section("Validity", (_items_or(_validity_lines(points), "Every point kept every validity rule and was stable."),
                             Paragraph("A point that breaks a rule is marked invalid and left out of the knee: its "
                                       "numbers are shown, not trusted.")), 3),
        Section("Load plots", plots + ((Items(skipped),) if skipped else ()) or (Paragraph("No figure."),), 3),
    ]


def _results(results: Results, all_cells: list[Cell], drawn: Figures) -> list[Section]:
    """The tables (queries, bench tests) and the figures; a table without cells is left out."""
    query = [c for c in all_cells if c.kind != "bench"]
    bench = _bench_table(results)
    shown = [Section("Results", (), 2)]
    if query:
        shown.append(Section("Queries", (
            Paragraph("One row per cell (model, prompt, threads), over its successful measured repetitions."),
            _query_table(query),
            Note("Columns", "n = successful measured runs (warmups and failures excluded); e2e s = median "
                 "end-to-end time; CI = 95 % confidence interval of the median (starred: n < 6, [min, max] with "
                 "less coverage); CV = stdev / mean; speedup = median e2e at the fewest threads / here, its "
                 "interval a percentile bootstrap of the two cells' runs.")), 3))
    if bench:
        shown.append(Section("Bench tests", (
            Paragraph("As llama-bench prints them: t/s = mean ± stdev of the repetitions' tokens/s."), bench), 3))
    plots: tuple[Block, ...] = tuple(Figure(p, _caption(p)) for p in drawn.paths if not p.stem.startswith(LOAD_PLOT))
    left_out = tuple(s for s in drawn.skipped if not s.startswith(LOAD_PLOT))
    skipped = (Items(left_out),) if left_out else ()
    return shown + [Section("Figures", plots + skipped or (Paragraph("No figure."),), 3)]


def _contention(results: Results, all_cells: list[Cell]):
    """Cells with runs flagged contended, and how many such runs --exclude-contended left out."""
    excluded = results.attrs.get("contended_excluded", 0)
    left_out = [f"Left out of every statistic (--exclude-contended): {counted(excluded, 'contended run')}."] \
        if excluded else []
    if int(results.attrs["schema_version"]) < 5:
        return Paragraph("Not measured: this results file predates the contention columns (schema 5).")
    return _items_or(left_out + contention_warnings(all_cells),
                     "None: no run's pinned cores did other work above the threshold (results column contended).")


def sections(results: Results, drawn: Figures) -> list[Section]:
    """The report, in order: title; a load run's section; answers, tables and figures, data quality (not for a load
    run without tasks); the run."""
    attrs = results.attrs
    all_cells = cells(results.results)
    launch = json.loads(attrs.get("launch_json", "{}"))
    toml = attrs.get("config_toml", "")
    config_json = json.dumps(json.loads(attrs.get("config_json") or "{}"), indent=2)
    load_only = bool(results.load_points) and not results.results
    done = counted(len(results.load_points), "load point") if load_only else \
        f"{len(results.results)} of {attrs['total_tasks']} tasks"
    tasks = [] if load_only else [
        Section("Answers", (_items_or(answer_sentences(results), "No answer could be written from this run."),
                            Note("Method", METHOD))),
        *_results(results, all_cells, drawn),
        Section("Data quality", ()),
        Section(f"Variation (CV above {100 * CV_LIMIT:.0f} %) and outliers (flagged, kept in every statistic)",
                (_items_or(warnings(all_cells), "No cell varies above the limit; no repetition is an outlier."),), 3),
        Section("Tasks that did not succeed", (_failures(results),), 3),
        Section("Tasks whose cores were shared with other work", (_contention(results, all_cells),), 3),
        Section("Engine configurations", (_items_or([line.strip() for line in engine_lines(results.results)],
                                                    "None recorded in this file."),), 3),
    ]
    return [
        Section(f"mpibench report: run {attrs['run_id']}",
                (Paragraph(f"Status {attrs['status']}: {done}, started {attrs['started']}, "
                           f"finished {attrs.get('finished') or '-'}."),), 1),
        *(_load_sections(results, drawn) if results.load_points else []),
        *tasks,
        Section("The run", ()),
        Section("Hosts", (_items_or(["; ".join(line.strip() for line in host_lines(h)) for h in results.hosts]
                                    + bandwidth_lines(results.bandwidth), "None recorded."),), 3),
        Section("Models", (_items_or([_model_line(m) for m in results.models], "None recorded."),), 3),
        Section("Software and MPI", (Items((
            f"software: {software_line(json.loads(attrs.get('software_json', '{}')))}",
            f"MPI library: {attrs['mpi_library_version']}", f"world size: {attrs['world_size']} ranks")),), 3),
        Section("Launch variables", (Table(("variable", "value"), tuple(launch.items()), "ll") if launch
                                     else Paragraph("None recorded."),), 3),
        Section("Configuration", (Code(toml, "toml") if toml else Code(config_json, "json"),), 3),
    ]


CSS = """
body { font: 15px/1.45 system-ui, sans-serif; color: #222; max-width: 72rem; margin: 1.5rem auto; padding: 0 1rem; }
h1 { font-size: 1.6rem; } h2 { border-bottom: 1px solid #ccc; margin-top: 2rem; }
table { border-collapse: collapse; margin: 0.6rem 0; font-size: 0.85rem; }
th, td { border: 1px solid #ccc; padding: 0.2rem 0.45rem; overflow-wrap: anywhere; vertical-align: top; }
th { background: #f2f2f2; } td.r, th.r { text-align: right; } td.l, th.l { text-align: left; }
.wide { overflow-x: auto; max-width: 100%; }
figure { margin: 1rem 0; break-inside: avoid; } img { max-width: 100%; height: auto; }
figcaption, .note { font-size: 0.85rem; color: #555; }
pre { background: #f6f6f6; padding: 0.6rem; white-space: pre-wrap; overflow-wrap: anywhere; font-size: 0.8rem; }
@media print {
  body { max-width: none; margin: 0; padding: 0; font-size: 10pt; }
  .wide { overflow: visible; } table { width: 100%; } tr, figure, pre { break-inside: avoid; }
  h2, h3 { break-after: avoid; }
}
"""
# No request leaves the page: images are data: URIs, the style is inline; the policy makes it so.
POLICY = "default-src 'none'; img-src data:; style-src 'unsafe-inline'"


def _html_block(block: Block) -> str:
    e = html.escape
    match block:
        case Paragraph(text):
            return f"<p>{e(text)}</p>"
        case Items(items):
            return "<ul>" + "".join(f"<li>{e(i)}</li>" for i in items) + "</ul>"
        case Note(label, text):
            return f'<p class="note"><strong>{e(label)}.</strong> {e(text)}</p>'
        case Table(header, rows, align):
            def row(cells_: tuple[str, ...], tag: str) -> str:
                return "<tr>" + "".join(f'<{tag} class="{a}">{e(v)}</{tag}>' for v, a in zip(cells_, align)) + "</tr>"
            return (f'<div class="wide"><table><thead>{row(header, "th")}</thead><tbody>'
                    + "".join(row(r, "td") for r in rows) + "</tbody></table></div>")
        case Figure(path, caption):
            data = base64.b64encode(path.read_bytes()).decode("ascii")
            return (f'<figure><img src="data:image/png;base64,{data}" alt="{e(caption)}">'
                    f"<figcaption>{e(caption)}</figcaption></figure>")
        case Code(text, _):
            return f"<pre>{e(text)}</pre>"
    raise TypeError(f"no HTML for {block!r}")


def to_html(report: list[Section]) -> str:
    """One self-contained page: every string escaped, every figure inline."""
    body = "".join(f"<h{s.level}>{html.escape(s.title)}</h{s.level}>" + "".join(map(_html_block, s.blocks))
                   for s in report)
    return (f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
            f'<meta http-equiv="Content-Security-Policy" content="{POLICY}">'
            f'<meta name="viewport" content="width=device-width, initial-scale=1">'
            f"<title>{html.escape(report[0].title)}</title><style>{CSS}</style></head>\n"
            f"<body>\n{body}\n</body></html>\n")


def _md(text: str) -> str:
    """Text as Markdown shows it literally: one line, its markup characters escaped."""
    return re.sub(r"([\\`*_\[\]<>|#~&])", r"\\\1", " ".join(text.split()))


def _md_block(block: Block, base: Path) -> str:
    match block:
        case Paragraph(text):
            return _md(text)
        case Items(items):
            return "\n".join(f"- {_md(i)}" for i in items)
        case Note(label, text):
            return f"> **{_md(label)}.** {_md(text)}"
        case Table(header, rows, align):
            def row(cells_: tuple[str, ...]) -> str:
                return "| " + " | ".join(_md(v) for v in cells_) + " |"
            rule = "| " + " | ".join("---:" if a == "r" else "---" for a in align) + " |"
            return "\n".join([row(header), rule, *map(row, rows)])
        case Figure(path, caption):
            return f"![{_md(caption)}]({quote(Path(os.path.relpath(path, base)).as_posix())})\n\n*{_md(caption)}*"
        case Code(text, language):
            fence = "`" * max(3, 1 + max((len(m) for m in re.findall(r"`+", text)), default=0))
            return f"{fence}{language}\n{text.rstrip()}\n{fence}"
    raise TypeError(f"no Markdown for {block!r}")


def to_markdown(report: list[Section], base: Path) -> str:
    """The same sections as Markdown; figures link to their PNG files relative to `base`, the report's folder."""
    return "\n\n".join("\n\n".join([f"{'#' * s.level} {_md(s.title)}", *(_md_block(b, base) for b in s.blocks)])
                       for s in report) + "\n"


def write_report(results_path: str | Path, out_dir: str | Path | None = None,
                 exclude_contended: bool = False) -> tuple[Path, Path]:
    """Write report.html and report.md beside the results file (or in out_dir), the figures in plots/ there."""
    results_path = Path(results_path)
    results = read_results(results_path, exclude_contended)
    out = Path(out_dir) if out_dir else results_path.parent
    out.mkdir(parents=True, exist_ok=True)
    try:
        drawn = figures(results_path, out / "plots", exclude_contended)
    except ResultsFileError as error:  # e.g. no successful task: the report still says what happened
        drawn = Figures([], [f"no figure: {error}"])
    report = sections(results, drawn)
    html_path, md_path = out / "report.html", out / "report.md"
    html_path.write_text(to_html(report), encoding="utf-8")
    md_path.write_text(to_markdown(report, out), encoding="utf-8")
    return html_path, md_path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("results", help="results.h5")
    parser.add_argument("--out", help="folder for the report and its figures (default: beside the results)")
    args = parser.parse_args(argv)
    try:
        for path in write_report(args.results, args.out):
            print(path)
    except ResultsFileError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
