"""Per-cell statistics of a run's results (pure): what `mpibench show` and `export` print and the plots draw.

A cell is one (kind, model, prompt or bench test, threads). Its statistics cover the successful measured
repetitions only: warmup runs (column `warmup` = 1) are counted apart and never enter a statistic; failed
runs are counted apart. Files written before `kind` and `warmup` existed read as queries without warmups.
A model that ran with more than one engine configuration (a preflight fallback on some node, nodes with
different builds) has its cells kept apart per configuration, never pooled: their `engine` names it.
"""

from __future__ import annotations

import math
from collections import defaultdict
from dataclasses import dataclass

from mpibench.config import bench_test_sizes
from mpibench.stats import CV_LIMIT, Stats, describe, ratio_ci
from mpibench.table import table_lines

CELL_METRICS = ("e2e_s", "decode_tok_s", "ttft_s", "prefill_tok_s", "tpot_s", "generated_tokens", "bytes_per_token",
                "roofline_tok_s", "roofline_fraction")
LABELS = {"e2e_s": "e2e s", "decode_tok_s": "decode tok/s", "prefill_tok_s": "prefill tok/s", "ttft_s": "TTFT s",
          "tpot_s": "TPOT s", "generated_tokens": "tokens", "bytes_per_token": "bytes/token",
          "roofline_tok_s": "roofline tok/s", "roofline_fraction": "roofline fraction"}
MAX_OUTLIER_LINES = 20


def is_warmup(record: dict) -> bool:
    return bool(record.get("warmup", 0))


def engine_config(record: dict) -> str:
    """The engine configuration a task ran with, in words; "" where none was recorded (a task not run, a file
    from before schema 3)."""
    if not record.get("engine_library_sha256"):
        return ""
    extra = "" if record.get("engine_extra_bufts", 1) else ", extra buffers off"
    return (f"{record.get('engine_variant') or 'native'} CPU backend {record['engine_library_sha256'][:8]}, "
            f"weights {record.get('engine_weight_buffers') or '-'}{extra}")


def engine_lines(records: list[dict]) -> list[str]:
    """Per host and model: the engine it ran with (library, compiler, AMX fix) and its preflight, with a
    warning where a fallback ran; what `show` prints under each host."""
    seen: dict[tuple, dict] = {}
    for r in records:
        if r.get("preflight") or r.get("engine_library"):
            seen.setdefault((r["hostname"], r["model"], engine_config(r), r.get("preflight", "")), r)
    lines = []
    for (host, model, config, attempts), r in seen.items():
        built = (f" ({r['engine_library']}, {r.get('engine_compiler') or 'compiler unknown'}"
                 f"{', AMX tile-config fix' if r.get('engine_fix') else ''})" if config else "")
        lines.append(f"  engine on {host} for {model}: {config or 'none ran'}{built}; preflight: {attempts or '-'}")
        if r.get("engine_fallback"):
            lines.append(f"  {fallback_warning(model, host)}")
    return lines


def fallback_warning(model: str, host: str) -> str:
    """The warning for a model that ran on a host after a preflight fallback (show, and a load run's table)."""
    return (f"warning: {model} on {host} ran after a preflight fallback, not with its engine as built: see README, "
            "CPU notes, and run `mpibench doctor` there")


def engines_by_model(records: list[dict]) -> dict[str, list[str]]:
    """Each model's distinct engine configurations, in the order first seen."""
    seen: dict[str, dict[str, None]] = defaultdict(dict)
    for record in records:
        config = engine_config(record)
        if config:
            seen[record["model"]][config] = None
    return {model: list(configs) for model, configs in seen.items()}


def grouped(records: list[dict]) -> dict[tuple, list[dict]]:
    """Rows by cell: (kind, model, prompt, threads, engine); engine is "" unless the model ran with several."""
    several = {m for m, configs in engines_by_model(records).items() if len(configs) > 1}
    groups: dict[tuple, list[dict]] = defaultdict(list)
    for r in records:
        engine = engine_config(r) if r["model"] in several else ""
        groups[(r["kind"], r["model"], r["prompt_id"], r["threads"], engine)].append(r)
    return groups


def model_label(model: str, synthetic: bool) -> str:
    """A model's name as tables and plots show it: a synthetic model's says it is timing only."""
    return f"{model} (synthetic: timing only)" if synthetic else model


@dataclass(frozen=True)
class Cell:
    """All repetitions of one (kind, model, prompt or test, threads) cell."""

    kind: str  # "query" or "bench"
    model: str
    prompt_id: str  # the prompt id, or for bench cells the test: ppN or tgN
    threads: int
    runs: int  # measured repetitions, failed ones included, warmups not
    failed: int
    warmups: int
    samples: dict[str, tuple[tuple[int, float], ...]]  # metric -> (repetition, value) of each successful run
    stats: dict[str, Stats]  # metric -> statistics of those values, in the same order
    engine: str = ""  # the engine configuration of its runs (engine_config)
    apart: bool = False  # the model ran with several engine configurations: this cell holds one of them
    contended: int = 0  # successful measured runs whose cores did other work (contention.py)
    contention_max: float = 0.0  # the largest contention_share among them
    synthetic: bool = False  # the model is synthetic (mpibench synth): its timings stand, its answers do not

    @property
    def apart_engine(self) -> str:
        """The engine configuration that keeps this cell apart from its model's others; "" if there are none."""
        return self.engine if self.apart else ""

    @property
    def key(self) -> tuple:
        """The cell's key among `grouped`'s."""
        return (self.kind, self.model, self.prompt_id, self.threads, self.apart_engine)

    @property
    def series(self) -> str:
        """The model (marked "timing only" when synthetic), and its engine configuration when it ran with several:
        what a table row or curve is."""
        model = model_label(self.model, self.synthetic)
        return f"{model} [{self.engine or 'not run'}]" if self.apart else model

    @property
    def medians(self) -> dict[str, float]:
        return {metric: s.median for metric, s in self.stats.items()}

    @property
    def rate_metric(self) -> str:
        """The throughput column: prefill tok/s for a ppN test, decode tok/s otherwise."""
        return bench_rate_metric(self.prompt_id) if self.kind == "bench" else "decode_tok_s"

    @property
    def main_metric(self) -> str:
        """What the cell is about: a bench test's throughput (as llama-bench reports), a query's e2e time."""
        return self.rate_metric if self.kind == "bench" else "e2e_s"

    @property
    def shown_metrics(self) -> tuple[str, str]:
        """The metrics `show` gives a CV for and checks for outliers: the main one and its partner."""
        return (self.main_metric, "e2e_s" if self.kind == "bench" else self.rate_metric)

    def outliers(self, metric: str) -> list[tuple[int, float]]:
        """(repetition, value) of each flagged sample of `metric`."""
        return [self.samples[metric][i] for i in self.stats[metric].outliers]

    @property
    def label(self) -> str:
        return f"{self.series} {self.prompt_id} threads={self.threads}"


def cells(records: list[dict]) -> list[Cell]:
    """Group result rows into cells and describe each metric over the successful measured runs."""
    result = []
    configs = engines_by_model(records)
    for (kind, model, prompt_id, threads, engine), rows in grouped(records).items():
        apart = len(configs.get(model, [])) > 1
        engine = engine if apart else next(iter(configs.get(model, [])), "")
        measured = [r for r in rows if not is_warmup(r)]
        ok = [r for r in measured if r["status"] == "ok"]
        samples = {m: tuple((int(r["repetition"]), float(r[m])) for r in ok if math.isfinite(float(r.get(m, math.nan))))
                   for m in CELL_METRICS}  # the roofline columns are derived in results.h5 alone
        stats = {m: describe([v for _, v in pairs]) for m, pairs in samples.items()}
        shares = [r["contention_share"] for r in ok if r["contended"]]
        result.append(Cell(kind, model, prompt_id, threads, len(measured), len(measured) - len(ok),
                           len(rows) - len(measured), samples, stats, engine, apart, len(shares),
                           max(shares, default=0.0), any(r.get("synthetic") for r in rows)))
    return sorted(result, key=lambda c: (c.kind != "bench", c.series, prompt_order(c.prompt_id), c.threads))


def prompt_order(prompt_id: str) -> tuple:
    """A sort key: pp tests before tg tests, each by size, as llama-bench lists them; prompts by name."""
    sizes = bench_test_sizes(prompt_id)
    if sizes is None:
        return (0, 0, prompt_id)
    n_prompt, n_gen = sizes
    return (1, n_prompt, "") if n_prompt else (2, n_gen, "")


def bench_rate_metric(test: str) -> str:
    """A bench test's throughput metric: prefill tok/s for a ppN test, decode tok/s for a tgN test."""
    sizes = bench_test_sizes(test)
    return "prefill_tok_s" if sizes and sizes[0] else "decode_tok_s"


def speedups(all_cells: list[Cell], metric: str = "e2e_s") -> dict[tuple[str, str, int], float]:
    """Speedup of each cell over the same series and prompt at its smallest thread count, by `metric` time;
    keyed by (series, prompt, threads). No interval: `speedup_intervals` bootstraps one."""
    base = _bases(all_cells)
    return {(c.series, c.prompt_id, c.threads): base[(c.series, c.prompt_id)].medians[metric] / c.medians[metric]
            for c in all_cells}


@dataclass(frozen=True)
class Speedup:
    """A cell's speedup over its series' fewest threads: the ratio of median times and its 95 % interval
    (stats.ratio_ci: a bootstrap of the two cells' samples), and the parallel efficiency it implies."""

    base_threads: int
    value: float
    ci_low: float
    ci_high: float

    def efficiency(self, threads: int) -> float:
        return self.value * self.base_threads / threads


def _bases(all_cells: list[Cell]) -> dict[tuple[str, str], Cell]:
    """Each (series, prompt)'s cell at its fewest threads: what speedups are over."""
    base: dict[tuple[str, str], Cell] = {}
    for cell in all_cells:
        key = (cell.series, cell.prompt_id)
        if key not in base or cell.threads < base[key].threads:
            base[key] = cell
    return base


def speedup_intervals(all_cells: list[Cell], metric: str = "e2e_s") -> dict[tuple[str, str, int], Speedup]:
    """Speedup of each cell over the same series and prompt at its fewest threads, by `metric` time, with
    its bootstrap interval; keyed by (series, prompt, threads) as `speedups`."""
    base = _bases(all_cells)
    result = {}
    for c in all_cells:
        b = base[(c.series, c.prompt_id)]
        low, high = ratio_ci([v for _, v in b.samples[metric]], [v for _, v in c.samples[metric]])
        result[(c.series, c.prompt_id, c.threads)] = Speedup(b.threads, b.medians[metric] / c.medians[metric],
                                                               low, high)
    return result


def format_number(value: float, digits: int | None = None) -> str:
    """A number with `digits` decimals; by default 3 below 10, 2 below 100, else 1."""
    if math.isnan(value):
        return "-"
    if digits is None:
        digits = 3 if abs(value) < 10 else 2 if abs(value) < 100 else 1
    return f"{value:.{digits}f}"


def format_ci(s: Stats, digits: int | None) -> str:
    """The median's confidence interval, starred when n < 6 makes it [min, max] below 95 % coverage."""
    if s.n < 2:
        return "-"
    return f"{format_number(s.ci_low, digits)}-{format_number(s.ci_high, digits)}" + ("*" if s.ci_level < 0.95 else "")


def format_cv(s: Stats) -> str:
    return "-" if math.isnan(s.cv) else f"{100 * s.cv:.1f}"


def _counts(c: Cell) -> tuple[str, str, str, str]:
    return (str(c.threads), str(c.stats[c.main_metric].n), str(c.failed), str(c.warmups))


def format_table(all_cells: list[Cell], markdown: bool = False) -> str:
    """The query cells: e2e time with its 95 % CI and CV, decode speed with its CV, TTFT, tokens, speedup."""
    speedup = speedups(all_cells)
    header = ("model", "prompt", "threads", "n", "failed", "warmups", "e2e s", "e2e 95% CI", "CV%",
              "decode tok/s", "CV%", "TTFT s", "tokens", "speedup")
    rows = [(c.series, c.prompt_id, *_counts(c), format_number(c.medians["e2e_s"]), format_ci(c.stats["e2e_s"], None),
             format_cv(c.stats["e2e_s"]), format_number(c.medians["decode_tok_s"], 1), format_cv(c.stats["decode_tok_s"]),
             format_number(c.medians["ttft_s"]), format_number(c.medians["generated_tokens"], 0),
             format_number(speedup[(c.series, c.prompt_id, c.threads)], 2)) for c in all_cells]
    return "\n".join(table_lines([header, *rows], markdown=markdown))


def format_bench_table(all_cells: list[Cell], markdown: bool = False) -> str:
    """The bench cells as llama-bench reports them: tokens/s of each test with its 95 % CI and CV."""
    speedup = speedups(all_cells)
    header = ("model", "test", "threads", "n", "failed", "warmups", "t/s", "t/s 95% CI", "CV%", "time s", "CV%",
              "speedup")
    rows = [(c.series, c.prompt_id, *_counts(c), format_number(c.medians[c.rate_metric], 1), format_ci(c.stats[c.rate_metric], 1),
             format_cv(c.stats[c.rate_metric]), format_number(c.medians["e2e_s"]), format_cv(c.stats["e2e_s"]),
             format_number(speedup[(c.series, c.prompt_id, c.threads)], 2)) for c in all_cells]
    return "\n".join(table_lines([header, *rows], markdown=markdown))


def warnings(all_cells: list[Cell], limit: float = CV_LIMIT) -> list[str]:
    """One line per cell whose shown metrics vary by more than `limit` (CV), then one per repetition
    flagged as an outlier (kept in every statistic)."""
    lines, outliers = [], []
    for c in all_cells:
        noisy = [f"{LABELS[m]} {100 * c.stats[m].cv:.1f} %" for m in c.shown_metrics
                 if not math.isnan(c.stats[m].cv) and c.stats[m].cv > limit]
        if noisy:
            lines.append(f"warning: CV > {100 * limit:.0f} % in {c.label} (n={c.stats[c.main_metric].n}): "
                         f"{', '.join(noisy)}")
        flagged: dict[int, list[str]] = defaultdict(list)
        for m in c.shown_metrics:
            for rep, value in c.outliers(m):
                flagged[rep].append(f"{LABELS[m]} {format_number(value)} (median {format_number(c.medians[m])})")
        outliers += [f"outlier: {c.label} repetition {rep}: {', '.join(what)}" for rep, what in sorted(flagged.items())]
    if len(outliers) > MAX_OUTLIER_LINES:
        more = len(outliers) - MAX_OUTLIER_LINES
        outliers = outliers[:MAX_OUTLIER_LINES] + [f"... and {more} more outliers (mpibench export lists them all)"]
    if lines:
        lines.append("noisy cells: rerun them with more repetitions, or on a quieter machine")
    return lines + outliers


def contention_warnings(all_cells: list[Cell]) -> list[str]:
    """One line per cell with runs whose pinned cores did other work (flagged contended; contention.py)."""
    return [f"warning: {c.label}: {c.contended} of {c.stats[c.main_metric].n} successful runs shared their cores "
            f"with other work (up to {100 * c.contention_max:.0f} % of the cores' time): rerun on quiet cores, or "
            "leave them out with --exclude-contended" for c in all_cells if c.contended]


def report(all_cells: list[Cell], markdown: bool = False) -> str:
    """The tables of `mpibench show` (bench tests, then queries; as Markdown tables with `markdown`), their
    notes, contention and CV warnings and outliers."""
    parts = []
    bench = [c for c in all_cells if c.kind == "bench"]
    query = [c for c in all_cells if c.kind != "bench"]
    gap = "\n\n" if markdown else "\n"  # Markdown needs a blank line before a table
    if bench:
        parts.append("bench tests (llama-bench's pp/tg): median tokens/s; speedup = time at the fewest threads "
                     "/ time here" + gap + format_bench_table(bench, markdown))
    if query:
        parts.append("queries: median per cell; speedup = e2e at the fewest threads / e2e here" + gap
                     + format_table(query, markdown))
    notes = ["n = successful measured runs (warmups, failures excluded); CI = 95 % confidence interval of the "
             "median; CV = stdev / mean"]
    apart = sorted({c.model for c in all_cells if c.apart})
    notes += [f"warning: {model} ran with several engine configurations; its cells are kept apart, one per "
              f"configuration [in brackets] (the engine lines above say where each ran)" for model in apart]
    if any(0 < c.stats[c.main_metric].ci_level < 0.95 for c in all_cells):
        notes.append("* n < 6: the interval is [min, max], covering the median with less than 95 % "
                     "(93.8 % at n=5, 87.5 % at n=4, 75 % at n=3)")
    return "\n\n".join(parts) + gap + "\n".join(notes + contention_warnings(all_cells) + warnings(all_cells))
