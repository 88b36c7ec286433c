"""Rubrics as data: parse and validate them, and find the one for each prompt of a run.

A rubric is a list of criteria, each of a kind of scoring/criteria.py's vocabulary with its parameters
(PARAMS below), a `weight` (points, default 1) and an optional `cap`: the highest score an answer can get
when it earns none of that criterion's points. Parsing lives here, beside the prompts, so that a
configuration can check its prompts' rubrics without importing the scorers.
"""

from __future__ import annotations

import difflib
import hashlib
import json
import math
import re
import tomllib
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from mpibench.prompts import study_prompts

COMMON_KEYS = ("kind", "label", "weight", "cap")
REQUIRED = object()
# kind -> parameter name -> (type, default or REQUIRED). Types: "words" and "patterns" are non-empty lists
# of strings, "ints" of integers >= 3; "count" a positive, "count0" a non-negative integer.
PARAMS = {
    "keywords": {"words": ("words", REQUIRED), "need": ("count", 1)},
    "forbidden_keywords": {"words": ("words", REQUIRED)},
    "regex": {"patterns": ("patterns", REQUIRED), "need": ("count", 1)},
    "forbidden_regex": {"patterns": ("patterns", REQUIRED)},
    "number": {"value": ("number", REQUIRED), "tolerance": ("number", 0.0)},
    "digits": {"reference": ("decimal", REQUIRED), "full": ("count", REQUIRED)},
    "length": {"min_words": ("count0", 0), "max_words": ("count", None)},
    "paragraphs": {"min": ("count", 1), "max": ("count", None)},
    "repetition": {"max": ("fraction", 0.2), "n": ("count", 4)},
    "polygons": {"sides": ("ints", REQUIRED), "closed": ("bool", True)},
    "balanced": {},
}


class RubricError(ValueError):
    """A rubric that cannot be used; the message names the prompt and criterion."""


@dataclass(frozen=True)
class Criterion:
    kind: str
    label: str
    weight: float
    cap: int | None
    params: dict


@dataclass(frozen=True)
class Rubric:
    prompt_id: str
    criteria: tuple[Criterion, ...]
    source: str  # "study", "config" or the rubric file's path


def _suggest(key: str, valid) -> str:
    close = difflib.get_close_matches(key, list(valid), n=1)
    return f" Did you mean '{close[0]}'?" if close else f" Valid: {', '.join(valid)}."


def _param(value, kind: str, name: str, where: str):
    def fail(expected: str):
        raise RubricError(f"{where}: '{name}' must be {expected}, got {value!r}")

    if kind in ("words", "patterns"):
        if not isinstance(value, list) or not value or not all(isinstance(v, str) and v for v in value):
            fail("a non-empty list of strings")
        for pattern in value if kind == "patterns" else ():
            try:
                re.compile(pattern)
            except re.error as error:
                raise RubricError(f"{where}: pattern {pattern!r} is not a valid regular expression ({error})") from None
    elif kind in ("count", "count0"):
        if isinstance(value, bool) or not isinstance(value, int) or value < (1 if kind == "count" else 0):
            fail("a positive integer" if kind == "count" else "a non-negative integer")
    elif kind in ("number", "fraction"):
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
            fail("a number")
        if kind == "fraction" and not 0 <= value <= 1:
            fail("a fraction from 0 to 1")
    elif kind == "decimal":
        if not isinstance(value, str) or not re.fullmatch(r"\d+\.\d+", value):
            fail("a decimal number written as a string, e.g. \"3.14159265358979\"")
    elif kind == "ints":
        if not isinstance(value, list) or not value or not all(isinstance(v, int) and v >= 3 for v in value):
            fail("a non-empty list of vertex counts (integers >= 3)")
    elif kind == "bool" and not isinstance(value, bool):
        fail("true or false")
    return value


def parse_criterion(entry, where: str) -> Criterion:
    if not isinstance(entry, dict):
        raise RubricError(f"{where}: a criterion must be a table with a 'kind', got {entry!r}")
    kind_name = entry.get("kind")
    if kind_name not in PARAMS:
        raise RubricError(f"{where}: unknown kind {kind_name!r}.{_suggest(str(kind_name), PARAMS)}")
    kind_params = PARAMS[kind_name]
    where = f"{where} ({kind_name})"
    for key in entry:
        if key not in COMMON_KEYS and key not in kind_params:
            raise RubricError(f"{where}: unknown key '{key}'.{_suggest(key, COMMON_KEYS[1:] + tuple(kind_params))}")
    params = {}
    for name, (ptype, default) in kind_params.items():
        if name in entry:
            params[name] = _param(entry[name], ptype, name, where)
        elif default is REQUIRED:
            raise RubricError(f"{where}: '{name}' is required")
    weight, cap = entry.get("weight", 1), entry.get("cap")
    if isinstance(weight, bool) or not isinstance(weight, (int, float)) or not 0 < weight < math.inf:
        raise RubricError(f"{where}: 'weight' must be a positive number, got {weight!r}")
    if cap is not None and (isinstance(cap, bool) or not isinstance(cap, int) or not 1 <= cap <= 10):
        raise RubricError(f"{where}: 'cap' must be an integer from 1 to 10, got {cap!r}")
    label = entry.get("label", kind_name)
    if not isinstance(label, str) or not label:
        raise RubricError(f"{where}: 'label' must be a non-empty string")
    return Criterion(kind_name, label, float(weight), cap, params)


def parse_rubric(entries, where: str) -> tuple[Criterion, ...]:
    """Validate a rubric: a non-empty list of criterion tables (TOML [[...]] array)."""
    if not isinstance(entries, list) or not entries:
        raise RubricError(f"{where}: a rubric is a non-empty list of criteria ([[...]] tables with a 'kind')")
    return tuple(parse_criterion(e, f"{where}, criterion {i}") for i, e in enumerate(entries, 1))


def _load_toml(text: str, where: str) -> dict:
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as error:
        raise RubricError(f"{where} is not valid TOML: {error}") from None


def study_rubrics() -> dict[str, tuple[Criterion, ...]]:
    """The rubrics of the five study queries (prompts/rubrics.toml)."""
    data = _load_toml(resources.files("mpibench.prompts").joinpath("rubrics.toml").read_text(), "rubrics.toml")
    return {pid: parse_rubric(entries, f"rubric of study prompt '{pid}'") for pid, entries in data.items()}


def read_rubric_file(path: str) -> dict[str, tuple[Criterion, ...]]:
    """A user's rubric file: one [[<prompt id>]] table per criterion."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as error:
        raise RubricError(f"cannot read rubric file {path}: {getattr(error, 'strerror', None) or error}") from None
    data = _load_toml(text, f"rubric file {path}")
    if not data:
        raise RubricError(f"rubric file {path} holds no rubric; add [[<prompt id>]] tables with a 'kind'")
    return {pid: parse_rubric(entries, f"{path}: rubric of prompt '{pid}'") for pid, entries in data.items()}


def _config_rubrics(config_toml: str) -> dict[tuple[str, str], tuple[Criterion, ...]]:
    """(prompt id, text) -> rubric from the run's own configuration ([[prompts]] tables with a rubric)."""
    data = _load_toml(config_toml, "the run's configuration") if config_toml else {}
    entries = data.get("prompts", [])
    return {(e["id"], e["text"]): parse_rubric(e["rubric"], f"rubric of prompt '{e['id']}' in the run's configuration")
            for e in entries if isinstance(e, dict) and "rubric" in e
            and isinstance(e.get("id"), str) and isinstance(e.get("text"), str)}


def rubrics_for(prompts: list[dict], config_toml: str, rubric_file: str | None) -> dict[str, Rubric]:
    """The rubric of each prompt of a run: a --rubrics file first, then the run's configuration, then the study's
    (which applies only where the prompt is the study's prompt word for word)."""
    ids = [p["id"] for p in prompts]
    chosen: dict[str, Rubric] = {}
    if rubric_file:
        for pid, criteria in read_rubric_file(rubric_file).items():
            if pid not in ids:
                raise RubricError(f"rubric file {rubric_file}: prompt '{pid}' is not in this run.{_suggest(pid, ids)}")
            chosen[pid] = Rubric(pid, criteria, rubric_file)
    configured = _config_rubrics(config_toml)
    study_texts = {p.id: p.text for p in study_prompts()}
    study = study_rubrics()
    for prompt in prompts:
        pid = prompt["id"]
        if pid in chosen:
            continue
        if (pid, prompt["text"]) in configured:
            chosen[pid] = Rubric(pid, configured[(pid, prompt["text"])], "config")
        elif study_texts.get(pid) == prompt["text"] and pid in study:
            chosen[pid] = Rubric(pid, study[pid], "study")
    return chosen


def rubric_fingerprint(rubrics: dict[str, Rubric]) -> str:
    data = {pid: [vars(c) for c in r.criteria] for pid, r in sorted(rubrics.items())}
    return hashlib.sha256(json.dumps(data, sort_keys=True).encode()).hexdigest()[:10]
