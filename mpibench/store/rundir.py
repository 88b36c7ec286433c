"""A run directory and every file in it: run.json (the run's header), journal.jsonl (the source of truth),
results.h5 (a snapshot made from the two: at the end of a run, on interrupt and by `mpibench rebuild`),
scores.jsonl, plots/, the report, and judge-<model>/ runs. Only this module creates or deletes them."""

from __future__ import annotations

import json
import os
import re
import resource
import shutil
import time
from pathlib import Path

from mpibench.metadata import timestamp
from mpibench.simd import annotate_hosts
from mpibench.store.hdf5 import RESULTS_FILE, write_results
from mpibench.store.journal import JOURNAL_FILE, Journal, latest_records, read_journal
from mpibench.store.scores import SCORES_FILE

HEADER_FILE, PLOTS_DIR = "run.json", "plots"
LOAD_KIND = "load"  # run.json's kind of a load run (mpibench load)
RUN_FILES = (RESULTS_FILE, JOURNAL_FILE, HEADER_FILE, PLOTS_DIR, SCORES_FILE, "report.html", "report.md")
JUDGE_PREFIX = "judge-"  # what --force replaces: RUN_FILES and judge-*/


class RunDirError(ValueError):
    """A directory that is not a usable run directory; the message says why."""


def new_run_id(config_hash: str) -> str:
    """A new run's id: when it started and its configuration, "20261203-124454-f7fb21"."""
    return time.strftime("%Y%m%d-%H%M%S") + "-" + config_hash[:6]


def check_new(run_dir: Path, force: bool) -> list[Path]:
    """The run files a new run in `run_dir` would replace; one that holds a run is refused without `force`."""
    if run_dir.exists() and not run_dir.is_dir():
        raise RunDirError(f"output {run_dir} exists and is not a directory")
    existing = [p for p in run_dir.glob("*") if p.name in RUN_FILES or p.name.startswith(JUDGE_PREFIX)] \
        if run_dir.is_dir() else []
    if existing and not force:
        raise RunDirError(f"output {run_dir} already holds a run; continue it with --resume {run_dir}, "
                          "choose another --out, or pass --force to replace it")
    return existing


def create(run_dir: Path, force: bool) -> Path:
    """A writable run directory for a new run; one that holds a run is replaced only with `force`."""
    existing = check_new(run_dir, force)
    try:
        run_dir.mkdir(parents=True, exist_ok=True)
        for path in existing:
            shutil.rmtree(path) if path.is_dir() else path.unlink()
        probe = run_dir / ".write-test"
        probe.write_text("")
        probe.unlink()
    except OSError as error:
        raise RunDirError(f"cannot write to output directory {run_dir}: {error.strerror}") from None
    return run_dir


def judge_dir(results: str | Path, model_name: str) -> Path:
    """Where the judge run of `model_name` over a run's results file goes."""
    return Path(results).parent / (JUDGE_PREFIX + re.sub(r"[^\w.-]+", "-", model_name))


def open_journal(run_dir: Path) -> Journal:
    return Journal(run_dir / JOURNAL_FILE)


def snapshot(run_dir: Path, header: dict) -> list[dict]:
    """Write results.h5 from the header and the journal; returns the records it holds (one a task)."""
    records = read_run(run_dir)[1]
    _write_results(run_dir, header, records)
    return records


def _write_results(run_dir: Path, header: dict, records: list[dict]) -> None:
    """results.h5, its host rows annotated with the llama.cpp build their tasks ran (simd.annotate_hosts); a load
    run's records are its points, summarised into the load tables (load/metrics.py)."""
    if header.get("kind") == LOAD_KIND:
        from mpibench.load.config import load_config_from_json
        from mpibench.load.metrics import summarise
        from mpibench.load.records import from_record

        try:
            slos = load_config_from_json(header["config_json"]).slos
            points = [from_record(r) for r in sorted(records, key=lambda r: r["index"])]
        except (KeyError, TypeError, ValueError) as error:
            raise RunDirError(f"{run_dir}: its {HEADER_FILE} or a load point of its {JOURNAL_FILE} is damaged "
                              f"({type(error).__name__}: {error})") from None
        write_results(run_dir / RESULTS_FILE, header, [], load=[summarise(p, r, slos) for p, r in points if not r.error])
        return
    write_results(run_dir / RESULTS_FILE, dict(header, hosts=annotate_hosts(header["hosts"], records)), records)


def rank0_clock() -> tuple[float, float]:
    """Now as (monotonic seconds, this process's CPU seconds): where rank 0's wall and CPU time of a launch start."""
    used = resource.getrusage(resource.RUSAGE_SELF)
    return time.monotonic(), used.ru_utime + used.ru_stime


def ended(status: str) -> str:
    """A launch's status once it is over: "complete" stays; anything else is "interrupted" (run.json still says
    "running" when the launch never closed: killed, or a node lost)."""
    return status if status == "complete" else "interrupted"


def close_launch(run_dir: Path, header: dict, journal: Journal, started: tuple[float, float]) -> list[dict]:
    """End this launch of a run: its header takes the end time, rank 0's wall and CPU seconds since `started`
    (rank0_clock) and its status ("complete" stays, anything else becomes "interrupted"); the journal closes and
    run.json and results.h5 are written. Returns the records results.h5 holds."""
    wall, cpu = rank0_clock()
    header.update(finished=timestamp(), wall_s=wall - started[0], coordinator_cpu_s=cpu - started[1],
                  status=ended(header["status"]))
    journal.close()
    write_header(run_dir, header)
    return snapshot(run_dir, header)


def write_header(run_dir: Path, header: dict) -> None:
    """Replace run.json atomically."""
    tmp = run_dir / (HEADER_FILE + ".tmp")
    tmp.write_text(json.dumps(header, indent=1, sort_keys=True))
    os.replace(tmp, run_dir / HEADER_FILE)


def read_header(run_dir: str | Path) -> dict:
    """A run directory's header (run.json)."""
    run_dir = Path(run_dir)
    if not (run_dir / HEADER_FILE).is_file():
        raise RunDirError(f"{run_dir} is not an mpibench run directory (it has no {HEADER_FILE})")
    try:
        return json.loads((run_dir / HEADER_FILE).read_text())
    except json.JSONDecodeError as error:
        raise RunDirError(f"{run_dir / HEADER_FILE} is damaged: {error}") from None


def read_run(run_dir: str | Path) -> tuple[dict, list[dict]]:
    """The header and one record a task (the latest journalled) of a run directory."""
    header, journal = read_header(run_dir), Path(run_dir) / JOURNAL_FILE
    try:
        records = latest_records(read_journal(journal)) if journal.exists() else []
    except ValueError as error:
        raise RunDirError(str(error)) from None
    return header, records


def previous_runs(folder: Path) -> list[tuple[Path, dict, list[dict]]]:
    """Every readable run directory in `folder` (e.g. results/), with its header and records."""
    runs = []
    for run_dir in sorted(folder.glob(f"*/{HEADER_FILE}")):
        try:
            runs.append((run_dir.parent, *read_run(run_dir.parent)))
        except (RunDirError, OSError, UnicodeDecodeError):
            continue  # not a run, or a damaged one: it cannot inform an estimate
    return runs


def rebuild(run_dir: str | Path) -> tuple[Path, dict, int]:
    """Write results.h5 again from run.json and the journal alone; returns (path, the header written, tasks or
    load points recorded). A run whose journal lacks some of its tasks (it died, or its last line was torn) is
    "interrupted", whatever run.json said. A load run's points are not known up front (a sweep plans them as it
    goes): its status is the one its last launch ended with, "interrupted" if that launch never ended."""
    run_dir = Path(run_dir)
    header, records = read_run(run_dir)
    if header.get("kind") == LOAD_KIND:
        header["status"] = ended(header.get("status", ""))
    else:
        header["status"] = "complete" if len(records) >= int(header["total_tasks"]) else "interrupted"
    _write_results(run_dir, header, records)
    return run_dir / RESULTS_FILE, header, len(records)
