"""The study's answers as sentences written from a results file's data (pure): how each model scales with
threads and where its knee is, whether greedy answers stay identical across thread counts and how scores move,
what each step up in model size costs and buys, which configurations are on the quality-against-cost Pareto
front, and what failed. Where data is missing, a sentence says what is missing and the command that provides it.
"""

from __future__ import annotations

import math
import statistics
from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from mpibench.scoring.determinism import CellDeterminism, check
from mpibench.scoring.summary import cell_scores
from mpibench.stats import CI_LEVEL, RESAMPLES, sum_ratio_ci
from mpibench.store.hdf5 import Results
from mpibench.summary import Cell, cells, grouped, is_warmup

KNEE_EFFICIENCY = 0.5  # the knee: efficiency falls under this ...
KNEE_GAIN = 0.10  # ... or doubling the threads speeds up by less than this
SCORE_COMMAND = "mpibench score <results.h5> --scorer rubric"
METHOD = (f"Speedup at t threads is the sum, over the prompts (or the one bench test) measured at both counts, of "
          f"each cell's median end-to-end time at the series' fewest threads, divided by that sum at t threads; "
          f"efficiency is speedup x fewest threads / t. Its {100 * CI_LEVEL:.0f} % interval is a percentile "
          f"bootstrap: every cell's runs resampled on their own, {RESAMPLES} times from a fixed seed.")


def _times(cell: Cell) -> list[float]:
    return [v for _, v in cell.samples["e2e_s"]]


def _total(group: Sequence[Cell]) -> float:
    return sum(c.medians["e2e_s"] for c in group)


def _threads(counts: Iterable[int]) -> str:
    counts = sorted(counts)
    return f"{counts[0]} thread" if counts == [1] else f"{', '.join(map(str, counts))} threads"


def _count(n: int, noun: str) -> str:
    """"1 query", "5 queries", "2 tasks"."""
    return f"{n} {noun}" if n == 1 else f"{n} {noun[:-1] + 'ies' if noun.endswith('y') else noun + 's'}"


def _ci(low: float, high: float, digits: int = 2) -> str:
    return "no interval: fewer than 2 runs per cell, rerun with --repetitions 5" if math.isnan(low) else \
        f"{100 * CI_LEVEL:.0f} % CI {low:.{digits}f}-{high:.{digits}f}"


def _mean(values: Sequence[float]) -> float:
    finite = [v for v in values if not math.isnan(v)]
    return sum(finite) / len(finite) if finite else math.nan


# Scaling ---------------------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Point:
    """A series' speedup at one thread count over its fewest, with its interval and efficiency."""

    threads: int
    speedup: float
    ci_low: float
    ci_high: float
    efficiency: float
    prompts: int  # prompts (or bench tests) measured at both counts


@dataclass(frozen=True)
class Group:
    """What one scaling sentence covers: a series' queries together, or one of its bench tests."""

    kind: str
    series: str
    model: str
    what: str  # "queries" or the bench test (pp512, tg128)
    by_threads: dict[int, dict[str, Cell]]  # threads -> prompt -> cell with successful runs


def groups(all_cells: Sequence[Cell]) -> list[Group]:
    """The cells with successful runs, as scaling groups: queries per series, then bench tests per series."""
    found: dict[tuple[bool, str, str, str], dict[int, dict[str, Cell]]] = defaultdict(lambda: defaultdict(dict))
    for c in all_cells:
        if c.samples["e2e_s"]:
            what = "queries" if c.kind == "query" else c.prompt_id
            found[(c.kind != "query", c.series, what, c.model)][c.threads][c.prompt_id] = c
    return [Group("bench" if bench else "query", series, model, what, dict(sorted(by_threads.items())))
            for (bench, series, what, model), by_threads in sorted(found.items())]


def scaling(group: Group) -> list[Point]:
    """Speedup and efficiency at each thread count over the fewest, summed over the prompts measured at both."""
    base_threads, base = next(iter(group.by_threads.items()))
    points = []
    for threads, here in group.by_threads.items():
        common = sorted(set(base) & set(here))
        if not common:  # none of its prompts ran at the fewest threads: no speedup to give
            continue
        low, high = sum_ratio_ci([_times(base[p]) for p in common], [_times(here[p]) for p in common])
        speedup = _total([base[p] for p in common]) / _total([here[p] for p in common])
        points.append(Point(threads, speedup, low, high, speedup * base_threads / threads, len(common)))
    return points


def knee(points: Sequence[Point]) -> str:
    """Where scaling stops paying: the first thread count whose efficiency is under KNEE_EFFICIENCY, or from
    which the smallest measured count of at least twice the threads gains under KNEE_GAIN in speedup."""
    for i, p in enumerate(points):
        if p.efficiency < KNEE_EFFICIENCY:
            return f"the knee is at {_threads([p.threads])}, where efficiency falls to {100 * p.efficiency:.0f} %"
        doubled = next((q for q in points[i + 1:] if q.threads >= 2 * p.threads), None)
        if doubled is not None and doubled.speedup / p.speedup - 1 < KNEE_GAIN:
            gain = doubled.speedup / p.speedup - 1
            return (f"the knee is at {_threads([p.threads])}: going to {doubled.threads} gains "
                    + (f"only {100 * gain:.0f} %" if gain > 0 else f"nothing ({100 * gain:.0f} %)"))
    doubled = points[-1].threads >= 2 * points[0].threads
    return (f"scaling held up to the largest count, {points[-1].threads} threads (efficiency "
            f"{100 * points[-1].efficiency:.0f} %" + (f", every doubling gained {100 * KNEE_GAIN:.0f} % or more)"
                                                      if doubled else ")"))


def scaling_sentence(group: Group) -> str:
    """One series' speedup and efficiency at each thread count with intervals, then its knee."""
    points = scaling(group)
    n = len({p for here in group.by_threads.values() for p in here})
    query = group.kind == "query"
    what = f"its {_count(n, 'query')}" if query else f"bench test {group.what}"
    if len(points) == 1:
        command = "mpibench run --threads 1,2,4,8" if query else "mpibench bench -t 1,2,4,8"
        ran = (f"ran at {_threads([points[0].threads])} only" if len(group.by_threads) == 1 else
               f"share no prompt between {_threads([points[0].threads])} and the other counts")
        return f"{group.series}: {what} {ran}; a speedup needs a second thread count ({command})."
    base, first, *rest = points

    def partial(p: Point) -> str:
        return "" if p.prompts == n else f", over the {p.prompts} of {n} measured at both counts"

    how = "summed median e2e" if query else "median time"
    pace = f"{first.speedup:.2f}x faster than" if first.speedup >= 1 else f"slower, at {first.speedup:.2f}x the speed of"
    parts = [f"{group.series}: on {what} ({how}), {first.threads} threads run {pace} "
             f"{base.threads} ({_ci(first.ci_low, first.ci_high)}{partial(first)}), efficiency "
             f"{100 * first.efficiency:.0f} %"]
    parts += [f"{p.threads} threads {p.speedup:.2f}x ({_ci(p.ci_low, p.ci_high)}{partial(p)}), "
              f"{100 * p.efficiency:.0f} %" for p in rest]
    return "; ".join(parts + [knee(points)]) + "."


# The memory roofline --------------------------------------------------------------------------------------------

def _median_of(cells_: Sequence[Cell], metric: str) -> float:
    values = [c.medians[metric] for c in cells_ if not math.isnan(c.medians[metric])]
    return statistics.median(values) if values else math.nan


def roofline_sentence(group: Group) -> str | None:
    """How close a group's decode came to its memory roofline at each thread count; None when it has no bound."""
    points = [(t, [c for c in here.values() if not math.isnan(c.medians["roofline_fraction"])])
              for t, here in group.by_threads.items()]
    points = [(t, cs) for t, cs in points if cs]
    if not points:
        return None
    parts = []
    for threads, cs in points:
        bound, per_token = _median_of(cs, "roofline_tok_s"), _median_of(cs, "bytes_per_token")
        parts.append(f"{100 * _median_of(cs, 'roofline_fraction'):.0f} %{'' if parts else ' of its memory roofline'} "
                     f"at {_threads([threads])} "
                     f"({_median_of(cs, 'decode_tok_s'):.3g} of {bound:.3g} tok/s: {bound * per_token / 1e9:.1f} GB/s "
                     f"read / {per_token / 1e6:.4g} MB a token)")
    prompts = len({p for here in group.by_threads.values() for p in here})
    what = f"its {_count(prompts, 'query')} (medians over them)" if group.kind == "query" else group.what
    return f"{group.series}, {what}: decode reached {', '.join(parts)}."


def prefill_sentence(group: Group, decode: Sequence[Group]) -> str | None:
    """A bench ppN group's speed against the decode roofline at the same threads: prefill is compute-bound, with no
    bound of its own, and no peak FLOP rate is measured to set one."""
    if group.kind != "bench" or not group.what.startswith("pp"):
        return None
    bounds = {t: _median_of([c for g in decode if g.series == group.series for c in g.by_threads.get(t, {}).values()],
                            "roofline_tok_s") for t in group.by_threads}
    parts = []
    for t, here in group.by_threads.items():
        speed = _median_of(list(here.values()), "prefill_tok_s")
        against = "" if math.isnan(bounds[t]) else f" ({speed / bounds[t]:.2g}x the decode roofline there)"
        parts.append(f"{speed:.3g} tok/s at {_threads([t])}{against}")
    return (f"{group.series}, {group.what}: prefill is compute-bound (a batch reads the weights once for all its "
            f"tokens), so it has no memory roofline, and no peak FLOP rate was measured: {', '.join(parts)}.")


def queries_prefill_sentence(found: Sequence[Group]) -> list[str]:
    """For query runs: the bench command whose pp tests are their prefill's compute-bound reference."""
    queries = [g for g in found if g.kind == "query"]
    if not queries:
        return []
    models = ",".join(dict.fromkeys(g.model for g in queries))
    threads = ",".join(map(str, sorted({t for g in queries for t in g.by_threads})))
    return [f"Prefill is compute-bound and has no memory roofline; its reference is llama-bench's pp at the same "
            f"threads: mpibench bench -m {models} -p 512 -n 0 -t {threads}."]


def roofline_sentences(all_cells: Sequence[Cell]) -> list[str]:
    """Decode against its memory roofline, per series and test (or queries), then prefill beside it."""
    found = groups(all_cells)
    decode = [g for g in found if g.kind == "query" or g.what.startswith("tg")]
    sentences = [s for g in decode if (s := roofline_sentence(g))]
    if decode and not sentences:
        sentences.append("Decode against its memory roofline: this file holds no bandwidth probe (written before "
                         "mpibench measured one, or every probe failed); mpibench probe measures a node's.")
    return sentences + [s for g in found if (s := prefill_sentence(g, decode))] + queries_prefill_sentence(found)


# Determinism and scores across thread counts --------------------------------------------------------------------

def _measured_queries(records: Sequence[dict]) -> list[dict]:
    return [r for r in records if r["kind"] == "query" and not is_warmup(r)]


def _divergence(c: CellDeterminism) -> str:
    at = sorted({d.threads for d in c.divergences})
    named = ", ".join(f"{t} (another repetition)" if t == c.reference_threads else str(t) for t in at)
    return (f"{c.prompt_id} at {named} threads (first at character {c.divergences[0].offset} of the "
            f"{c.reference_threads}-thread answer)")


def determinism_sentences(records: Sequence[dict]) -> list[str]:
    """Per model: for how many prompts the greedy answers were byte-identical across thread counts and
    repetitions, and which prompts diverged at which threads."""
    by_model: dict[str, list[CellDeterminism]] = defaultdict(list)
    for c in check(_measured_queries(records)):
        by_model[c.model].append(c)
    sentences = []
    for model, found in by_model.items():
        comparable = [c for c in found if c.answers > 1]
        if not comparable:
            sentences.append(f"{model}: each prompt has one answer only; determinism needs a second thread count "
                             f"or repetition (mpibench run --threads 1,2,4,8).")
            continue
        same = sum(c.identical for c in comparable)
        threads = _threads({t for c in comparable for t in c.threads})
        text = (f"{model}: greedy answers were byte-identical across {threads} for {same} of {len(comparable)} "
                f"prompts")
        diverged = [_divergence(c) for c in comparable if not c.identical]
        sentences.append(text + ("; they diverged for " + "; ".join(diverged) if diverged else "") + ".")
    return sentences


def _scorers(scores: Sequence[dict]) -> list[str]:
    return sorted({s["scorer"] for s in scores})


def score_sentences(records: Sequence[dict], scores: Sequence[dict]) -> list[str]:
    """Per scorer and model: the mean score at each thread count (unusable scores left out)."""
    if not scores:
        return [f"Scores across thread counts: not scored: run {SCORE_COMMAND}."]
    sentences = []
    for scorer in _scorers(scores):
        by_model: dict[str, dict[int, list[float]]] = defaultdict(lambda: defaultdict(list))
        for (model, _, threads), values in cell_scores(_measured_queries(records), list(scores), scorer).items():
            by_model[model][threads] += [v for v in values if not math.isnan(v)]
        for model, by_threads in sorted(by_model.items()):
            means = {t: _mean(v) for t, v in sorted(by_threads.items()) if v}
            if not means:
                sentences.append(f"{scorer} gave {model} no usable score.")
                continue
            counts = {len(by_threads[t]) for t in means}
            n = f"{counts.pop()} answers each" if len(counts) == 1 else \
                "answers " + ", ".join(str(len(by_threads[t])) for t in means)
            spread = max(means.values()) - min(means.values())
            moved = "" if len(means) == 1 else "; unchanged to one decimal" if spread < 0.05 else \
                f"; it moved by {spread:.1f} across thread counts"
            sentences.append(f"{scorer} mean score of {model} at {_threads(means)}: "
                             f"{', '.join(f'{m:.1f}' for m in means.values())} ({n}){moved}.")
    return sentences


# Model size ------------------------------------------------------------------------------------------------------

def _size(parameters: int) -> str:
    if not parameters:
        return "parameters unknown"
    return f"{parameters / 1e9:.1f} B parameters" if parameters >= 1e9 else f"{parameters / 1e6:.0f} M parameters"


def _step_cost(small: dict[int, dict[str, Cell]], big: dict[int, dict[str, Cell]]
               ) -> tuple[int, list[str], float, float, float, float] | None:
    """(threads, prompts, small cost, big cost, ratio interval) at the fewest threads both measured a prompt."""
    for threads in sorted(set(small) & set(big)):
        common = sorted(set(small[threads]) & set(big[threads]))
        if common:
            a, b = [small[threads][p] for p in common], [big[threads][p] for p in common]
            low, high = sum_ratio_ci([_times(c) for c in b], [_times(c) for c in a])
            return threads, common, threads * _total(a) / len(common), threads * _total(b) / len(common), low, high
    return None


def size_steps(records: Sequence[dict], models: Sequence[dict], scores: Sequence[dict]) -> list[str]:
    """For each step up in parameter count: the core-seconds (median e2e x threads) per answer or bench test,
    at the fewest threads both models ran, as a ratio with its interval, and the change in mean score."""
    parameters = {m["name"]: m["parameters"] for m in models}
    found = groups(cells(list(records)))
    sentences = []
    for kind in ("query", "bench"):
        by_key = {(g.series, g.what): g for g in found if g.kind == kind}
        series = sorted({(parameters.get(g.model, 0), g.series, g.model) for g in by_key.values()})
        if len(series) == 1:
            command = "mpibench run --models" if kind == "query" else "mpibench bench -m"
            sentences.append(f"Model size: only {series[0][1]} has {kind} results; the comparison needs a second "
                             f"model ({command} {series[0][2]},<another model>).")
        for (p_small, small, m_small), (p_big, big, m_big) in zip(series, series[1:]):
            parts = []
            for what in [w for name, w in by_key if name == small]:
                step = (_step_cost(by_key[(small, what)].by_threads, by_key[(big, what)].by_threads)
                        if (big, what) in by_key else None)
                if step is None:
                    parts.append(f"{what}: no thread count where both ran the same prompt")
                    continue
                threads, common, a, b, low, high = step
                label = f"each answer (mean of {_count(len(common), 'prompt')})" if kind == "query" else what
                parts.append(f"{label} costs {b / a:.2f}x the core-seconds at {_threads([threads])} "
                             f"({_ci(low, high)}; {a:.3g} -> {b:.3g} core-s)"
                             + (_score_step(records, scores, m_small, m_big, common) if kind == "query" else ""))
            sentences.append(f"{small} ({_size(p_small)}) -> {big} ({_size(p_big)}): " + "; ".join(parts) + ".")
    return sentences


def _score_step(records: Sequence[dict], scores: Sequence[dict], small: str, big: str, prompts: list[str]) -> str:
    """The change in each scorer's mean score (over every thread count of the prompts both ran), or what to run."""
    if not scores:
        return f"; not scored: run {SCORE_COMMAND}"
    parts = []
    for scorer in _scorers(scores):
        scored = cell_scores(_measured_queries(records), list(scores), scorer)
        a, b = ([v for (m, p, _), vs in scored.items() if m == model and p in prompts for v in vs]
                for model in (small, big))
        mean_a, mean_b = _mean(a), _mean(b)
        parts.append(f"the {scorer} mean score goes {mean_a:.1f} -> {mean_b:.1f} ({mean_b - mean_a:+.1f})"
                     if not math.isnan(mean_a - mean_b) else f"{scorer}: not both have usable scores")
    return ", and " + ", ".join(parts)


# Pareto front ----------------------------------------------------------------------------------------------------

def pareto_front(points: list[tuple[float, float]]) -> list[int]:
    """Indices of the (cost, score) points that no other point beats on both (cheaper or equal and better or equal,
    strictly on one), sorted by cost."""
    front = [i for i, (c, s) in enumerate(points)
             if not any(c2 <= c and s2 >= s and (c2, s2) != (c, s) for c2, s2 in points)]
    return sorted(front, key=lambda i: points[i])


def _series(records: Sequence[dict]) -> dict[str, str]:
    """Task id -> its series: the model, with its engine configuration in brackets when it ran with several."""
    return {r["task_id"]: f"{model} [{engine}]" if engine else model
            for (_, model, _, _, engine), rows in grouped(list(records)).items() for r in rows}


def pareto_sentences(records: Sequence[dict], scores: Sequence[dict]) -> list[str]:
    """Per scorer: the (series, threads) configurations on the quality-against-cost front, cost = mean core-seconds
    (threads x e2e) per scored answer, quality = mean usable score (as analysis/quality.py draws it)."""
    if not scores:
        return [f"Quality against cost: not scored: run {SCORE_COMMAND}."]
    by_task = {r["task_id"]: r for r in _measured_queries(records) if r["status"] == "ok"}
    series = _series(by_task.values())
    sentences = []
    for scorer in _scorers(scores):
        configs: dict[tuple[str, int], list[tuple[float, float]]] = defaultdict(list)
        for s in scores:
            task = by_task.get(s["task_id"])
            if s["scorer"] == scorer and task is not None and not math.isnan(s["score"]):
                cost = task["threads"] * task["e2e_s"]
                configs[(series[task["task_id"]], task["threads"])].append((cost, s["score"]))
        keys = sorted(configs)
        points = [(_mean([c for c, _ in configs[k]]), _mean([s for _, s in configs[k]])) for k in keys]
        front = pareto_front(points)
        if not front:
            sentences.append(f"{scorer}: no usable scores, so no quality-against-cost front.")
            continue
        listed = ", ".join(f"{keys[i][0]} at {_threads([keys[i][1]])} ({points[i][0]:.3g} core-s, score "
                           f"{points[i][1]:.1f})" for i in front)
        others = len(keys) - len(front)
        sentences.append(f"On the {scorer} quality-against-cost Pareto front (mean score against mean core-seconds "
                         f"per scored answer): {listed}" + (f"; each of the other {others} configurations is matched "
                         "or beaten on both by one of these." if others else "; no configuration is dominated."))
    return sentences


# Failures --------------------------------------------------------------------------------------------------------

def reason(record: dict) -> str:
    """A failure's class: its status and the error text before the first colon ("not run: " prefix dropped)."""
    text = record["error"].removeprefix("not run: ").split(":")[0].strip()
    return f"{record['status']} ({text or 'no error text'})"


def failure_sentences(records: Sequence[dict], total_tasks: int) -> list[str]:
    """The tasks that did not succeed, counted by reason class, and the tasks with no result yet."""
    bad = Counter(reason(r) for r in records if r["status"] != "ok")
    command = "bench" if all(r.get("kind") == "bench" for r in records) else "run"
    if not records:
        sentences = ["No task has a result yet."]
    elif bad:
        listed = ", ".join(f"{n} {what}" for what, n in sorted(bad.items(), key=lambda item: (-item[1], item[0])))
        sentences = [f"{sum(bad.values())} of {_count(len(records), 'task')} did not succeed: {listed}; they are in "
                     f"no statistic (rerun them with mpibench {command} --resume <run dir> --retry-failed)."]
    else:
        sentences = [f"All {len(records)} recorded tasks succeeded." if len(records) > 1 else
                     "The 1 recorded task succeeded."]
    missing = total_tasks - len(records)
    if missing > 0:
        sentences.append(f"{missing} of the {_count(total_tasks, 'planned task')} {'has' if missing == 1 else 'have'} "
                         f"no result (the run stopped or is still going): mpibench {command} --resume <run dir> "
                         "completes it.")
    return sentences


def answer_sentences(results: Results) -> list[str]:
    """The study's answers in the report's order: scaling, determinism and scores across threads, model size,
    quality against cost, failures."""
    records = results.results
    all_cells = cells(records)
    synthetic = sorted(m["name"] for m in results.models if m.get("synthetic"))
    one = len(synthetic) == 1
    sentences = [f"Timing only: {', '.join(synthetic)} {'is' if one else 'are'} synthetic (mpibench synth: a real "
                 f"model's shape with random weights); {'its' if one else 'their'} timings stand for the real shape's, "
                 f"{'its' if one else 'their'} answers, determinism and scores do not."] if synthetic else []
    sentences += [scaling_sentence(g) for g in groups(all_cells)]
    if _measured_queries(records):
        sentences += determinism_sentences(records) + score_sentences(records, results.scores)
    elif records:
        sentences.append("Determinism and scores: bench runs produce no answers; run the study's queries with "
                         "mpibench run.")
    sentences += size_steps(records, results.models, results.scores) + roofline_sentences(all_cells)
    if _measured_queries(records):
        sentences += pareto_sentences(records, results.scores)
    total = int(results.attrs.get("total_tasks", len(records)))
    return sentences + failure_sentences(records, total)
