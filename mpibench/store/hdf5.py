"""The results file: one HDF5 file per run, rewritten atomically from the run header and the journal."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path

import h5py
import numpy as np

from mpibench.roofline import task_roofline
from mpibench.store.journal import JOURNAL_FILE
from mpibench.store.schema import (
    BANDWIDTH_COLUMNS, BANDWIDTH_DEFINITIONS, HOST_COLUMNS, HOST_DEFINITIONS, KIND_DEFAULTS, MODEL_COLUMNS,
    MODEL_DEFINITIONS, PROMPT_COLUMNS, RESULT_COLUMNS, RESULT_DEFAULTS, RESULT_DEFINITIONS, ROOFLINE_COLUMNS,
    ROOFLINE_DEFINITIONS, SCHEMA_VERSION, WORKER_COLUMNS, empty_result,
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


def _table(group: h5py.Group, name: str, columns, rows: list[dict]) -> None:
    dtype = np.dtype([(c, _DTYPES[k]) for c, k in columns])
    data = np.array([tuple(_cell(row, c, k) for c, k in columns) for row in rows], dtype=dtype)
    group.create_dataset(name, data=data, maxshape=(None,), chunks=True if rows else (64,))


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


def write_results(path: str | Path, header: dict, records: list[dict]) -> None:
    """Write the whole file to a temporary name, then rename it: readers never see a half-written file."""
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
        _table(f, "hosts", HOST_COLUMNS, header["hosts"])
        for column, definition in HOST_DEFINITIONS.items():
            f["hosts"].attrs[column] = definition
        workers = [w for launch in header.get("launches") or [header] for w in launch["workers"]]
        _table(f, "workers", WORKER_COLUMNS, workers)  # every launch's ranks
        models, bandwidth = _with_llama_description(header["models"], records), bandwidth_rows(header)
        _table(f, "models", MODEL_COLUMNS, models)
        for column, definition in MODEL_DEFINITIONS.items():
            f["models"].attrs[column] = definition
        _table(f, "bandwidth", BANDWIDTH_COLUMNS, bandwidth)
        for column, definition in BANDWIDTH_DEFINITIONS.items():
            f["bandwidth"].attrs[column] = definition
        _table(f, "prompts", PROMPT_COLUMNS, header["prompts"])
        _table(f, "results", RESULT_COLUMNS + ROOFLINE_COLUMNS, _with_roofline(records, models, bandwidth))
        for column, definition in (RESULT_DEFINITIONS | ROOFLINE_DEFINITIONS).items():
            f["results"].attrs[column] = definition
        f.create_dataset("answers", data=np.array([_text(r["answer"]) for r in records], dtype=object),
                         dtype=_STR, maxshape=(None,))
        token_times = f.create_dataset("token_times_ns", (len(records),), dtype=h5py.vlen_dtype(np.int64),
                                       maxshape=(None,))
        for i, record in enumerate(records):
            token_times[i] = np.asarray(record["token_ns"], dtype=np.int64)
        token_times.attrs["definition"] = "arrival time of each generated token, ns since the request started"
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
                   _rows(f["prompts"]), results, *scores, bandwidth=bandwidth)
