"""Human grading round trip: export the distinct answers to a CSV a person fills in, import it back, validated.

Columns: answer_id, prompt_id, [model, threads,] question, answer, score, comment. Blinded exports leave
out model and threads and order the rows by answer id (a hash), so nothing hints at which model wrote what.
On import only answer_id, score and (optionally) comment are read; every problem is a HumanCsvError.
"""

from __future__ import annotations

import csv
import hashlib
import io
import math
from dataclasses import dataclass
from pathlib import Path

from mpibench.scoring import ScoringError
from mpibench.scoring.answers import DistinctAnswer
from mpibench.store.scores import Score, answer_sha

MAX_LISTED = 3


class HumanCsvError(ScoringError):
    """A grading CSV that cannot be imported; the message says which row and what to fix."""


@dataclass(frozen=True)
class Grade:
    score: float
    comment: str


def export_csv(path: str | Path, answers: list[DistinctAnswer], questions: dict[str, str], blind: bool,
               force: bool) -> int:
    """Write one row per distinct answer with empty score and comment cells; returns the row count."""
    path = Path(path)
    if path.exists() and not force:
        raise HumanCsvError(f"{path} already exists (perhaps with grades in it); choose another name or pass --force")
    columns = ["answer_id", "prompt_id"] + ([] if blind else ["model", "threads"]) + ["question", "answer", "score", "comment"]
    order = (lambda a: (a.prompt_id, a.answer_id)) if blind else (lambda a: (a.prompt_id, a.models, a.threads))
    try:
        with path.open("w", newline="", encoding="utf-8") as handle:
            writer = csv.writer(handle)
            writer.writerow(columns)
            for a in sorted(answers, key=order):
                shown = [] if blind else [";".join(a.models), ";".join(map(str, a.threads))]
                writer.writerow([a.answer_id, a.prompt_id, *shown, questions[a.prompt_id], a.answer, "", ""])
    except OSError as error:
        raise HumanCsvError(f"cannot write {path}: {error.strerror}") from None
    return len(answers)


def _listed(items: list[str]) -> str:
    more = f" and {len(items) - MAX_LISTED} more" if len(items) > MAX_LISTED else ""
    return ", ".join(items[:MAX_LISTED]) + more


def _rows(path: Path) -> list[dict]:
    try:
        text = path.read_text(encoding="utf-8-sig")
    except FileNotFoundError:
        raise HumanCsvError(f"{path}: no such file") from None
    except UnicodeDecodeError:
        raise HumanCsvError(f"{path} is not UTF-8 text; save it as 'CSV UTF-8'") from None
    except OSError as error:
        raise HumanCsvError(f"cannot read {path}: {error.strerror}") from None
    if not text.strip():
        raise HumanCsvError(f"{path} is empty; export the answers with --export first")
    first = text.splitlines()[0]
    delimiter = max(",;\t", key=first.count)  # spreadsheets in some locales save with ';'
    try:
        reader = csv.DictReader(io.StringIO(text, newline=""), delimiter=delimiter)
        rows = list(reader)
    except csv.Error as error:
        raise HumanCsvError(f"{path} is not a readable CSV file ({error})") from None
    missing = [c for c in ("answer_id", "score") if c not in (reader.fieldnames or [])]
    if missing:
        raise HumanCsvError(f"{path} has no column {' or '.join(missing)} (columns: {', '.join(reader.fieldnames or [])}); "
                            "import the CSV that --export wrote")
    return rows


def _score(text: str, where: str) -> float:
    if not text.strip():
        raise HumanCsvError(f"{where}: no score; give every answer a score from 1 to 10")
    try:
        value = float(text.strip().replace(",", "."))
    except ValueError:
        raise HumanCsvError(f"{where}: score {text.strip()!r} is not a number from 1 to 10") from None
    if not (math.isfinite(value) and 1 <= value <= 10):
        raise HumanCsvError(f"{where}: score {text.strip()!r} is outside 1-10")
    return value


def import_csv(path: str | Path, answers: list[DistinctAnswer]) -> dict[str, Grade]:
    """answer id -> grade, after checking every row: ids known and unique, every answer graded, scores 1-10."""
    path = Path(path)
    known = {a.answer_id for a in answers}
    grades: dict[str, Grade] = {}
    first_row: dict[str, int] = {}
    unknown = []
    for number, row in enumerate(_rows(path), 2):  # row 1 is the header
        aid = (row.get("answer_id") or "").strip()
        where = f"{path}: row {number}"
        if not aid:
            raise HumanCsvError(f"{where}: the answer_id cell is empty")
        if aid in first_row:
            raise HumanCsvError(f"{where}: answer {aid} is graded twice (rows {first_row[aid]} and {number}); keep one")
        first_row[aid] = number
        if aid not in known:
            unknown.append(aid)
            continue
        grades[aid] = Grade(_score(row.get("score") or "", f"{where} (answer {aid})"), (row.get("comment") or "").strip())
    if unknown:
        raise HumanCsvError(f"{path}: {len(unknown)} answer ids are not answers of this results file ({_listed(unknown)}); "
                            "was the CSV exported from another run?")
    absent = sorted(known - set(grades))
    if absent:
        raise HumanCsvError(f"{path}: {len(absent)} answers of this results file have no row ({_listed(absent)}); "
                            "export again or add them")
    return grades


def file_sha(path: str | Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()[:12]


def human_scores(answers: list[DistinctAnswer], grades: dict[str, Grade]) -> list[Score]:
    return [Score(t, answer_sha(a.answer), grades[a.answer_id].score, grades[a.answer_id].comment)
            for a in answers for t in a.task_ids]
