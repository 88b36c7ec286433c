"""The results file: one HDF5 file per run, rewritten atomically from the run header and the journal."""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import h5py
import numpy as np

from mpibench.load.metrics import PointSummary, mark_knees
from mpibench.roofline import task_roofline
from mpibench.store.journal import JOURNAL_FILE
from mpibench.store.schema import (
    BANDWIDTH_COLUMNS, BANDWIDTH_DEFINITIONS, HOST_COLUMNS, HOST_DEFINITIONS, KIND_DEFAULTS, LOAD_POINT_COLUMNS,
    LOAD_POINT_DEFINITIONS, MODEL_COLUMNS, MODEL_DEFINITIONS, PROMPT_COLUMNS, REQUEST_COLUMNS, REQUEST_DEFINITIONS,
    REQUEST_TOKEN_DEFINITION, RESULT_COLUMNS, RESULT_DEFAULTS, RESULT_DEFINITIONS, ROOFLINE_COLUMNS,
    ROOFLINE_DEFINITIONS, SCHEMA_VERSION, TIMELINE_COLUMNS, TIMELINE_DEFINITIONS, WORKER_COLUMNS, empty_result,
)
from mpibench.store.scores import batches_for_rewrite, write_tables

RESULTS_FILE = "results.h5"
_STR = h5py.string_dtype()
_DTYPES = {"str": _STR, "int": np.int64, "float": np.float64}


class ResultsFileError(ValueError):
    """A results file that cannot be read; the message says why."""


def _text(value: str) -> str:
    """HDF5 strings cannot hold NUL characters (a model may generate them): store U+FFFD instead."""
    return value.replace("\x00", "\ufffd")


def _cell(row: dict, column: str, kind: str):
    value = row.get(column, KIND_DEFAULTS[kind])  # e.g. host facts in the run.json of an earlier mpibench
    return _text(value) if kind == "str" else value


def _table(group: h5py.Group, name: str, columns, rows: list[dict], definitions: dict | None = None) -> None:
    """A table of `rows` with `columns`, each column's definition an attribute of it."""
    dtype = np.dtype([(c, _DTYPES[k]) for c, k in columns])
    data = np.array([tuple(_cell(row, c, k) for c, k in columns) for row in rows], dtype=dtype)
    group.create_dataset(name, data=data, maxshape=(None,), chunks=True if rows else (64,))
    for column, definition in (definitions or {}).items():
        group[name].attrs[column] = definition


def _ragged(group: h5py.Group, name: str, rows: list[dict], definition: str) -> None:
    """Each row's "token_ns" as one row of a ragged int64 dataset, aligned with its table."""
    dataset = group.create_dataset(name, (len(rows),), dtype=h5py.vlen_dtype(np.int64), maxshape=(None,))
    for i, row in enumerate(rows):
        dataset[i] = np.asarray(row["token_ns"], dtype=np.int64)
    dataset.attrs["definition"] = definition


def _write_load(f: h5py.File, load: Sequence[PointSummary]) -> None:
    """A load run's tables: load_points (knees marked over all points), requests with request_token_ns, timeline."""
    requests = [row for summary in load for row in summary.requests]
    _table(f, "load_points", LOAD_POINT_COLUMNS, mark_knees([summary.point for summary in load]),
           LOAD_POINT_DEFINITIONS)
    _table(f, "requests", REQUEST_COLUMNS, requests, REQUEST_DEFINITIONS)
    _ragged(f, "request_token_ns", requests, REQUEST_TOKEN_DEFINITION)
    _table(f, "timeline", TIMELINE_COLUMNS, [row for summary in load for row in summary.timeline],
           TIMELINE_DEFINITIONS)


def _rows(dataset: h5py.Dataset, columns=(), **defaults) -> list[dict]:
    """The table's rows as dicts; `columns` the file lacks get `defaults` or the empty value of their kind."""
    names = dataset.dtype.names
    missing = {c: defaults.get(c, KIND_DEFAULTS[k]) for c, k in columns if c not in names}
    return [
        {**{n: (v.decode("utf-8") if isinstance(v, bytes) else v.item()) for n, v in zip(names, row)}, **missing}
        for row in dataset[()]
    ]


def _with_llama_description(models: list[dict], records: list[dict]) -> list[dict]:
    """Model rows with llama.cpp's own description and tensor size, as a runner of the model reported them."""
    seen = {r["model"]: r for r in records if r.get("model_desc")}
    return [dict(m, llama_desc=seen[m["name"]]["model_desc"], llama_bytes=seen[m["name"]]["model_bytes"])
            if m["name"] in seen else m for m in models]


def bandwidth_rows(header: dict) -> list[dict]:
    """Every launch's bandwidth probe rows (a run.json from before the probe has none)."""
    return [row for launch in header.get("launches") or [header] for row in launch.get("bandwidth", [])]


def _with_roofline(records: list[dict], models: list[dict], bandwidth: list[dict]) -> list[dict]:
    """Result rows with their ROOFLINE_COLUMNS, derived from their model's row and the bandwidth rows."""
    by_name = {m["name"]: m for m in models}
    return [dict(r, **task_roofline(r, by_name.get(r["model"]), bandwidth)) for r in records]


def write_results(path: str | Path, header: dict, records: list[dict], load: Sequence[PointSummary] = ()) -> None:
    """Write the whole file to a temporary name, then rename it: readers never see a half-written file. A load
    run passes its points' summaries (load.metrics.summarise) as `load`: they become the load tables."""
    path = Path(path)
    records = sorted((empty_result(**r) for r in records), key=lambda r: r["index"])  # older journals lack columns
    tmp = path.with_name(path.name + ".tmp")
    with h5py.File(tmp, "w") as f:
        f.attrs["schema_version"] = SCHEMA_VERSION
        for key in ("mpibench_version", "run_id", "config_hash", "config_json", "config_toml",
                    "mpi_library_version", "started", "finished", "status"):
            f.attrs[key] = _text(str(header.get(key, "")))
        f.attrs["world_size"] = int(header["world_size"])
        f.attrs["total_tasks"] = int(header["total_tasks"])
        for key in ("wall_s", "coordinator_cpu_s"):  # rank 0's coordinating time and CPU time (this launch)
            f.attrs[key] = float(header.get(key, float("nan")))
        f.attrs["resumes_json"] = json.dumps(header.get("resumes", []))
        f.attrs["launches_json"] = json.dumps(header.get("launches", []), sort_keys=True)
        f.attrs["software_json"] = json.dumps(header.get("software", {}), sort_keys=True)
        f.attrs["launch_json"] = json.dumps(header.get("launch", {}), sort_keys=True)
        _table(f, "hosts", HOST_COLUMNS, header["hosts"], HOST_DEFINITIONS)
        workers = [w for launch in header.get("launches") or [header] for w in launch["workers"]]
        _table(f, "workers", WORKER_COLUMNS, workers)  # every launch's ranks
        models, bandwidth = _with_llama_description(header["models"], records), bandwidth_rows(header)
        _table(f, "models", MODEL_COLUMNS, models, MODEL_DEFINITIONS)
        _table(f, "bandwidth", BANDWIDTH_COLUMNS, bandwidth, BANDWIDTH_DEFINITIONS)
        _table(f, "prompts", PROMPT_COLUMNS, header["prompts"])
        _table(f, "results", RESULT_COLUMNS + ROOFLINE_COLUMNS, _with_roofline(records, models, bandwidth),
               RESULT_DEFINITIONS | ROOFLINE_DEFINITIONS)
        f.create_dataset("answers", data=np.array([_text(r["answer"]) for r in records], dtype=object),
                         dtype=_STR, maxshape=(None,))
        _ragged(f, "token_times_ns", records, "arrival time of each generated token, ns since the request started")
        if load:
            _write_load(f, load)
        write_tables(f, batches_for_rewrite(path.parent), {r["task_id"]: r["answer"] for r in records})
    os.replace(tmp, path)


@dataclass(frozen=True)
class Results:
    attrs: dict
    hosts: list[dict]
    workers: list[dict]
    models: list[dict]
    prompts: list[dict]
    results: list[dict]  # one dict a task, with its "answer" and "token_ns"
    scores: list[dict] = field(default_factory=list)  # one dict per (task, scorer); none in unscored files
    scorers: list[dict] = field(default_factory=list)
    bandwidth: list[dict] = field(default_factory=list)  # the read-bandwidth probes; none before schema 5
    load_points: list[dict] = field(default_factory=list)  # a load run's tables (mpibench load); none elsewhere
    requests: list[dict] = field(default_factory=list)  # one dict a request, with its "token_ns"
    timeline: list[dict] = field(default_factory=list)


def results_file(path: str | Path) -> Path:
    """The results file a user means: `path` itself, or the results.h5 in a run directory."""
    path = Path(path)
    return path / RESULTS_FILE if path.is_dir() else path


def _rebuild_hint(path: Path) -> str:
    """How to write the file again, when its run directory holds the journal it was made from."""
    return f"; write it again from the run's journal: mpibench rebuild {path.parent}" \
        if (path.parent / JOURNAL_FILE).is_file() else ""


def read_results(path: str | Path, exclude_contended: bool = False) -> Results:
    """Read a results file (or a run directory's) written by any schema version this mpibench knows; with
    `exclude_contended`, the successful runs flagged `contended` (their cores did other work) are left out,
    and attrs["contended_excluded"] says how many."""
    given, path = Path(path), results_file(path)
    try:
        f = h5py.File(path, "r")
    except FileNotFoundError:
        where = f"{given} is a directory without {RESULTS_FILE}" if given.is_dir() else f"{path}: no such file"
        raise ResultsFileError(where + _rebuild_hint(path)) from None
    except OSError as error:
        raise ResultsFileError(f"{path}: not a readable HDF5 file ({error}){_rebuild_hint(path)}") from None
    try:
        with f:
            return _read(f, path, exclude_contended)
    except OSError as error:  # a file cut short can open and fail on the first table it reads
        raise ResultsFileError(f"{path}: damaged ({error}){_rebuild_hint(path)}") from None


def _read(f: h5py.File, path: Path, exclude_contended: bool) -> Results:
    version = int(f.attrs.get("schema_version", -1))
    if version == -1:
        raise ResultsFileError(f"{path}: not an mpibench results file (no schema_version)")
    if version > SCHEMA_VERSION:
        raise ResultsFileError(f"{path}: schema version {version} is newer than this mpibench "
                               f"reads ({SCHEMA_VERSION}); upgrade mpibench")
    missing = [n for n in ("hosts", "workers", "models", "prompts", "results", "answers", "token_times_ns")
               if n not in f]
    if missing:
        raise ResultsFileError(f"{path}: not a complete results file (no {', '.join(missing)}){_rebuild_hint(path)}")
    attrs = {k: (v.item() if hasattr(v, "item") else v) for k, v in f.attrs.items()}
    results = _rows(f["results"], RESULT_COLUMNS + ROOFLINE_COLUMNS, **RESULT_DEFAULTS)
    answers = f["answers"].asstr()[()]
    for row, answer, times in zip(results, answers, f["token_times_ns"][()]):
        row["answer"] = answer
        row["token_ns"] = [int(t) for t in times]
    if exclude_contended:
        kept = [r for r in results if not (r["contended"] and r["status"] == "ok")]
        attrs["contended_excluded"] = len(results) - len(kept)
        results = kept
    scores = [_rows(f[name]) if name in f else [] for name in ("scores", "scorers")]
    bandwidth = _rows(f["bandwidth"], BANDWIDTH_COLUMNS) if "bandwidth" in f else []
    return Results(attrs, _rows(f["hosts"], HOST_COLUMNS), _rows(f["workers"]),
                   _rows(f["models"], MODEL_COLUMNS),
                   _rows(f["prompts"]), results, *scores, bandwidth=bandwidth, **_read_load(f))


def _read_load(f: h5py.File) -> dict:
    """A load run's tables as Results' load_points, requests (each with its "token_ns", a tuple) and timeline;
    empty for files without them (every run but a load run, every file before schema 6)."""
    if "load_points" not in f:
        return {}
    requests = _rows(f["requests"], REQUEST_COLUMNS)
    for row, times in zip(requests, f["request_token_ns"][()]):
        row["token_ns"] = tuple(int(t) for t in times)
    return {"load_points": _rows(f["load_points"], LOAD_POINT_COLUMNS, replicas=1), "requests": requests,
            "timeline": _rows(f["timeline"], TIMELINE_COLUMNS)}
