"""`mpibench score` and `mpibench determinism`: read a results file, score it, store the scores, report.

Rubric and human scoring run in one process. Judging is a sweep of the judge model over judge prompts, run
run through run.py like any sweep on every rank (launch it with mpirun like `mpibench run`) into a
judge-<model>/ folder of the run directory; rank 0 then parses the ratings and stores them like any other
scorer's.
"""

from __future__ import annotations

import math
import re
import sys
from pathlib import Path

from mpibench.prompts.rubric import RubricError
from mpibench.metadata import timestamp
from mpibench.scoring import ScoringError
from mpibench.scoring.answers import DistinctAnswer, distinct_answers
from mpibench.store.hdf5 import Results, ResultsFileError, read_results
from mpibench.store.scores import Score, ScoreBatch, ScoresFileError, answer_sha, batches_from_tables, replace_batch
from mpibench.table import counted

JUDGE_OPTIONS = ("judge_model", "judge_threads", "judge_max_tokens", "judge_ctx")
HUMAN_OPTIONS = ("export", "import_csv", "blind", "grader", "force")
OPTIONS = {"rubric": ("rubrics",), "judge": JUDGE_OPTIONS, "human": HUMAN_OPTIONS, None: ()}
JUDGE_DEFAULTS = {"judge_threads": 1, "judge_max_tokens": 256, "judge_ctx": 4096}


def _flag(option: str) -> str:
    return "--" + {"import_csv": "import", "judge_ctx": "ctx"}.get(option, option).replace("_", "-")


def check_options(args) -> None:
    """Options that belong to another scorer, or a scorer missing what it needs, are errors."""
    allowed = OPTIONS[args.scorer]
    for option in ("rubrics",) + JUDGE_OPTIONS + HUMAN_OPTIONS:
        if getattr(args, option) is not None and getattr(args, option) is not False and option not in allowed:
            owner = next(s for s, opts in OPTIONS.items() if option in opts)
            raise ScoringError(f"{_flag(option)} applies to --scorer {owner}")
    if args.scorer == "judge":
        if not args.judge_model:
            raise ScoringError("--scorer judge needs --judge-model (a builtin name such as smollm2-135m or a GGUF path)")
        for option in JUDGE_DEFAULTS:
            if getattr(args, option) is not None and getattr(args, option) < 1:
                raise ScoringError(f"{_flag(option)} must be a positive integer")
    if args.scorer == "human":
        if (args.export is None) == (args.import_csv is None):
            raise ScoringError("--scorer human needs either --export CSV (to grade) or --import CSV (graded)")
        for option, needs in (("blind", "export"), ("force", "export"), ("grader", "import_csv")):
            if getattr(args, option) is not None and getattr(args, option) is not False and getattr(args, needs) is None:
                raise ScoringError(f"{_flag(option)} goes with {_flag(needs)}")
        if args.grader is not None and not re.fullmatch(r"[\w.-]+", args.grader):
            raise ScoringError("--grader must be a plain name (letters, digits, '.', '_' or '-')")


SYNTHETIC_REFUSAL = "synthetic models (mpibench synth) are timing only: random weights, meaningless answers, never scored"


def _answers(results: Results, path: str) -> list[DistinctAnswer]:
    """The distinct answers to score: those of the real models (a synthetic model's are refused)."""
    synthetic = {m["name"] for m in results.models if m.get("synthetic")} | \
        {r["model"] for r in results.results if r.get("synthetic")}
    real = [r for r in results.results if r["model"] not in synthetic]
    if synthetic and not any(r["status"] == "ok" for r in real):
        raise ScoringError(f"{path} holds answers of synthetic models only ({', '.join(sorted(synthetic))}); "
                           f"{SYNTHETIC_REFUSAL}")
    answers = distinct_answers(real)
    if not answers:
        raise ScoringError(f"{path} holds no successful task; there is no answer to score")
    if synthetic:
        print(f"mpibench: warning: {', '.join(sorted(synthetic))} left unscored: {SYNTHETIC_REFUSAL}", file=sys.stderr)
    return answers


def _store(path: str, results: Results, batch: ScoreBatch, plots: bool) -> None:
    """Save the batch (scores.jsonl, then results.h5), print the tables, redraw the quality plots and an
    existing report."""
    answers = {r["task_id"]: r["answer"] for r in results.results}
    replace_batch(path, batch, answers, batches_from_tables(results.scores, results.scorers, answers))
    unusable = sum(math.isnan(s.score) for s in batch.scores)
    print(f"mpibench: {counted(len(batch.scores), 'score')} by {batch.scorer} written to {path} and "
          f"{Path(path).parent / 'scores.jsonl'}" + (f" ({unusable} without a usable score)" if unusable else ""),
          file=sys.stderr)
    print_scores(path)
    if plots:
        from analysis.quality import draw_quality

        try:
            for png in draw_quality(path, Path(path).parent / "plots"):
                print(f"mpibench: plot {png}", file=sys.stderr)
        except ResultsFileError as error:
            print(f"mpibench: warning: no quality plots: {error}", file=sys.stderr)
        if (Path(path).parent / "report.html").exists():  # written before these scores: bring it up to date
            from analysis.report import write_report

            for written in write_report(path):
                print(f"mpibench: report {written}", file=sys.stderr)


def print_scores(path: str) -> None:
    from mpibench.scoring.summary import format_scores

    results = read_results(path)
    print(format_scores(results.results, results.scores, results.scorers))


def _rubric(args, results: Results) -> ScoreBatch:
    from mpibench.prompts.rubric import rubric_fingerprint, rubrics_for
    from mpibench.scoring.rubric import RUBRIC_VERSION, score_answer

    answers = _answers(results, args.results)
    rubrics = rubrics_for(results.prompts, str(results.attrs.get("config_toml", "")), args.rubrics)
    missing = sorted({a.prompt_id for a in answers} - set(rubrics))
    if len(missing) == len({a.prompt_id for a in answers}):
        raise ScoringError(f"no prompt of {args.results} has a rubric ({', '.join(missing)}); "
                           "give them one with --rubrics FILE (see README, 'Scoring')")
    if missing:
        print(f"mpibench: warning: no rubric for prompt {', '.join(missing)}: its answers stay unscored by the rubric "
              "(give one with --rubrics FILE)", file=sys.stderr)
    scores = []
    for answer in answers:
        if answer.prompt_id in rubrics:
            result = score_answer(rubrics[answer.prompt_id].criteria, answer.answer)
            scores += [Score(t, answer_sha(answer.answer), float(result.score), result.rationale) for t in answer.task_ids]
    details = {"rubrics": {pid: {"source": r.source, "criteria": [vars(c) for c in r.criteria]}
                           for pid, r in sorted(rubrics.items())}, "unscored_prompts": missing}
    return ScoreBatch("rubric", f"{RUBRIC_VERSION} {rubric_fingerprint(rubrics)}", timestamp(), details, tuple(scores))


def _human(args, results: Results) -> ScoreBatch | None:
    from mpibench.scoring.human import export_csv, file_sha, human_scores, import_csv

    answers = _answers(results, args.results)
    if args.export is not None:
        questions = {p["id"]: p["text"] for p in results.prompts}
        rows = export_csv(args.export, answers, questions, args.blind, args.force)
        print(f"mpibench: {counted(rows, 'distinct answer')} written to {args.export}" + (" (blinded)" if args.blind else "")
              + "; fill in the score column (1-10), then: mpibench score " + args.results
              + f" --scorer human --import {args.export}", file=sys.stderr)
        return None
    grades = import_csv(args.import_csv, answers)
    scorer = "human" + (f":{args.grader}" if args.grader else "")
    sha = file_sha(args.import_csv)
    details = {"csv": str(Path(args.import_csv).resolve()), "sha256_12": sha, "answers": len(grades)}
    return ScoreBatch(scorer, f"csv {sha}", timestamp(), details, tuple(human_scores(answers, grades)))


def _judge(args) -> int:
    """Every rank: the judge sweep, through run.py like any sweep; rank 0 then stores the parsed ratings."""
    from mpibench import run
    from mpibench.config import ConfigError, SweepConfig, model_from_entry
    from mpibench.models import inspect_model
    from mpibench.synth.shapes import is_synth_name
    from mpibench.scoring.judge import JUDGE_TEMPLATE, JUDGE_VERSION, judge_prompts, judge_scores
    from mpibench.store.rundir import RESULTS_FILE, judge_dir

    options = {k: getattr(args, k) if getattr(args, k) is not None else v for k, v in JUDGE_DEFAULTS.items()}

    def judged_answers() -> tuple[Results, list[DistinctAnswer]]:
        results = read_results(args.results)
        return results, _answers(results, args.results)

    def load():  # rank 0, before any task: every problem here stops all ranks with exit code 2
        try:
            results, answers = judged_answers()
        except (ResultsFileError, ScoringError) as error:
            raise ConfigError(str(error)) from None
        spec = model_from_entry(args.judge_model)
        if is_synth_name(spec.builtin) or inspect_model(spec).synthetic:
            raise ConfigError(f"the judge model {spec.name} is synthetic: it cannot judge ({SYNTHETIC_REFUSAL})")
        questions = {p["id"]: p["text"] for p in results.prompts}
        config = SweepConfig(models=(spec,), prompts=judge_prompts(answers, questions),
                             threads=(options["judge_threads"],), max_tokens=options["judge_max_tokens"],
                             n_ctx=options["judge_ctx"], out=str(judge_dir(args.results, spec.name)), plots=False)
        return config, ""

    def finish(run_dir: Path, code: int) -> int:  # rank 0, after the judge sweep
        results, answers = judged_answers()
        judged = read_results(run_dir / RESULTS_FILE)
        model = judged.models[0]
        scores = judge_scores(answers, {r["prompt_id"]: r for r in judged.results})
        details = {"model": model, "prompt_version": JUDGE_VERSION, "prompt_template": JUDGE_TEMPLATE,
                   "max_tokens": options["judge_max_tokens"], "threads": options["judge_threads"],
                   "n_ctx": options["judge_ctx"], "judge_run": run_dir.name, "judge_run_id": judged.attrs["run_id"],
                   "world_size": judged.attrs["world_size"]}
        version = f"{JUDGE_VERSION} {model['name']} {model['quantization']} {model['size_bytes']} bytes"
        name = model_from_entry(args.judge_model).name
        batch = ScoreBatch(f"judge:{name}", version, timestamp(), details, tuple(scores))
        _store(args.results, results, batch, not args.no_plots)
        return code  # 1 when some judge tasks failed (their scores are NaN with the reason)

    return run.sweep(load, run.Options(force=True, draw_plots=False), finish)


def score_command(args) -> int:
    try:
        check_options(args)
        if args.scorer is None:
            print_scores(args.results)
            return 0
        if args.scorer == "judge":
            return _judge(args)
        results = read_results(args.results)
        batch = _rubric(args, results) if args.scorer == "rubric" else _human(args, results)
        if batch is not None:
            _store(args.results, results, batch, not args.no_plots)
        return 0
    except (ScoringError, ScoresFileError, RubricError) as error:
        print(f"mpibench: error: {error}", file=sys.stderr)
        return 2


def determinism_command(args) -> int:
    from mpibench.scoring.determinism import check, format_report

    cells = check(read_results(args.results).results)
    if not cells:
        print(f"mpibench: error: {args.results} holds no successful task to compare", file=sys.stderr)
        return 2
    print(format_report(cells))
    return 0 if all(c.identical for c in cells) else 1  # a CI job can gate on it
