"""Scores of a run: `scores.jsonl` beside results.h5 is the source of truth, the HDF5 tables a copy of it.

Each line of scores.jsonl is one scorer's batch (its version, details and one score per task). A score
remembers the hash of the answer it judged, so a score whose task now has another answer (the run was
replaced) is left out of the HDF5 file instead of being attached to the wrong text.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import shutil
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

import h5py
import numpy as np

from mpibench.store.schema import SCORE_COLUMNS, SCORE_DEFINITIONS, SCORER_COLUMNS

SCORES_FILE = "scores.jsonl"


class ScoresFileError(ValueError):
    """A scores file that cannot be read or written; the message says why."""


@dataclass(frozen=True)
class Score:
    task_id: str
    answer_sha: str  # answer_sha() of the text that was scored
    score: float  # 1-10, NaN when the scorer gave no usable score (the rationale says why)
    rationale: str


@dataclass(frozen=True)
class ScoreBatch:
    """All scores of one scorer (e.g. "rubric", "judge:smollm2-135m", "human:alice") on one run."""

    scorer: str
    version: str
    scored_at: str
    details: dict  # what the scorer was: rubric data, judge model and prompt, CSV file
    scores: tuple[Score, ...]


def answer_sha(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]


def _to_json(batch: ScoreBatch) -> str:
    scores = [[s.task_id, s.answer_sha, None if math.isnan(s.score) else s.score, s.rationale] for s in batch.scores]
    return json.dumps({"scorer": batch.scorer, "version": batch.version, "scored_at": batch.scored_at,
                       "details": batch.details, "scores": scores}, sort_keys=True, allow_nan=False)


def _from_json(data: dict) -> ScoreBatch:
    scores = tuple(Score(t, a, float("nan") if s is None else float(s), r) for t, a, s, r in data["scores"])
    return ScoreBatch(data["scorer"], data["version"], data["scored_at"], data["details"], scores)


def read_batches(run_dir: str | Path) -> list[ScoreBatch]:
    """The batches in run_dir/scores.jsonl (none if the file does not exist)."""
    path = Path(run_dir) / SCORES_FILE
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except FileNotFoundError:
        return []
    except (OSError, UnicodeDecodeError) as error:
        raise ScoresFileError(f"cannot read {path}: {error}") from None
    try:
        return [_from_json(json.loads(line)) for line in lines if line.strip()]
    except (ValueError, KeyError, TypeError) as error:
        raise ScoresFileError(f"{path} is damaged ({error}); restore it or delete it and score again") from None


def batches_for_rewrite(run_dir: str | Path) -> list[ScoreBatch]:
    """Batches to copy into a rewritten results.h5; a damaged scores.jsonl is warned about, never fatal."""
    try:
        return read_batches(run_dir)
    except ScoresFileError as error:
        print(f"mpibench: warning: results.h5 written without scores: {error}", file=sys.stderr)
        return []


def _atomic_write(path: Path, write) -> None:
    """write(tmp_path) then rename over path; a unique temporary name, so concurrent writers never mix."""
    handle, tmp = tempfile.mkstemp(prefix=path.name + ".", suffix=".tmp", dir=path.parent)
    os.close(handle)
    try:
        write(Path(tmp))
        os.chmod(tmp, path.stat().st_mode & 0o777 if path.exists() else 0o644)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_tables(f: h5py.File, batches: list[ScoreBatch], answers: dict[str, str]) -> None:
    """The `scores` and `scorers` tables; answers maps task id -> current answer text."""
    shas = {task: answer_sha(text) for task, text in answers.items()}
    rows = [(s.task_id, b.scorer, b.version, s.score, s.rationale)
            for b in batches for s in b.scores if shas.get(s.task_id) == s.answer_sha]
    str_type = h5py.string_dtype()
    kinds = {"str": str_type, "float": np.float64}
    for name, columns, data in (
        ("scores", SCORE_COLUMNS, rows),
        ("scorers", SCORER_COLUMNS, [(b.scorer, b.version, b.scored_at, json.dumps(b.details, sort_keys=True))
                                     for b in batches]),
    ):
        if name in f:
            del f[name]
        dtype = np.dtype([(c, kinds[k]) for c, k in columns])
        f.create_dataset(name, data=np.array(data, dtype=dtype), maxshape=(None,), chunks=True if data else (64,))
    for column, definition in SCORE_DEFINITIONS.items():
        f["scores"].attrs[column] = definition


def replace_batch(results_path: str | Path, batch: ScoreBatch, answers: dict[str, str],
                  existing_in_file: list[ScoreBatch]) -> None:
    """Add or replace one scorer's batch in scores.jsonl, then in a copy of results.h5 renamed over it.

    `existing_in_file` seeds scores.jsonl when it does not exist yet (a results.h5 moved on its own).
    """
    results_path = Path(results_path)
    jsonl = results_path.parent / SCORES_FILE
    batches = read_batches(results_path.parent) if jsonl.exists() else existing_in_file
    batches = [b for b in batches if b.scorer != batch.scorer] + [batch]
    try:
        _atomic_write(jsonl, lambda tmp: tmp.write_text("".join(_to_json(b) + "\n" for b in batches), encoding="utf-8"))

        def update(tmp: Path) -> None:
            shutil.copyfile(results_path, tmp)
            with h5py.File(tmp, "a") as f:
                write_tables(f, batches, answers)

        _atomic_write(results_path, update)
    except OSError as error:
        raise ScoresFileError(f"cannot write the scores beside {results_path}: {error}") from None


def batches_from_tables(scores: list[dict], scorers: list[dict], answers: dict[str, str]) -> list[ScoreBatch]:
    """Batches rebuilt from a results file's tables (for a results.h5 without its scores.jsonl)."""
    batches = []
    for scorer in scorers:
        rows = tuple(Score(r["task_id"], answer_sha(answers.get(r["task_id"], "")), r["score"], r["rationale"])
                     for r in scores if r["scorer"] == scorer["scorer"])
        batches.append(ScoreBatch(scorer["scorer"], scorer["scorer_version"], scorer["scored_at"],
                                  json.loads(scorer["details_json"]), rows))
    return batches
