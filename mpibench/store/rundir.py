"""A run directory: run.json (the run's header), journal.jsonl (the source of truth) and results.h5 (made
from the two, and made again by `mpibench rebuild`)."""

from __future__ import annotations

import json
import os
from pathlib import Path

from mpibench.store.hdf5 import write_results
from mpibench.store.journal import latest_records, read_journal

RESULTS_FILE, JOURNAL_FILE, HEADER_FILE = "results.h5", "journal.jsonl", "run.json"


class RunDirError(ValueError):
    """A directory that is not a usable run directory; the message says why."""


def write_header(run_dir: Path, header: dict) -> None:
    """Replace run.json atomically."""
    tmp = run_dir / (HEADER_FILE + ".tmp")
    tmp.write_text(json.dumps(header, indent=1, sort_keys=True))
    os.replace(tmp, run_dir / HEADER_FILE)


def read_run(run_dir: str | Path) -> tuple[dict, list[dict]]:
    """The header and one record a task (the latest journalled) of a run directory."""
    run_dir = Path(run_dir)
    if not (run_dir / HEADER_FILE).is_file():
        raise RunDirError(f"{run_dir} is not an mpibench run directory (it has no {HEADER_FILE})")
    try:
        header = json.loads((run_dir / HEADER_FILE).read_text())
    except json.JSONDecodeError as error:
        raise RunDirError(f"{run_dir / HEADER_FILE} is damaged: {error}") from None
    journal = run_dir / JOURNAL_FILE
    try:
        records = latest_records(read_journal(journal)) if journal.exists() else []
    except ValueError as error:
        raise RunDirError(str(error)) from None
    return header, records


def rebuild(run_dir: str | Path) -> tuple[Path, int, int]:
    """Write results.h5 again from run.json and the journal alone; returns (path, tasks recorded, total)."""
    run_dir = Path(run_dir)
    header, records = read_run(run_dir)
    if header.get("status") == "running":  # the run died without saying so
        header["status"] = "complete" if len(records) >= int(header["total_tasks"]) else "interrupted"
    write_results(run_dir / RESULTS_FILE, header, records)
    return run_dir / RESULTS_FILE, len(records), int(header["total_tasks"])
