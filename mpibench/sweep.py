"""One `mpibench run` on every rank: placement, validation and planning on rank 0, then coordinate or serve.

Workers never parse the configuration: rank 0 validates everything (config, model files, thread counts
against the cores each node offers, the output directory) before any task starts, and on error tells
the workers to stop with the same exit code.
"""

from __future__ import annotations

import json
import resource
import shutil
import signal
import sys
import time
from dataclasses import asdict
from pathlib import Path

from mpibench import __version__, launcher, mpi
from mpibench.affinity import format_cpu_list
from mpibench.config import ConfigError, SweepConfig
from mpibench.coordinator import coordinate
from mpibench.metadata import rank_facts, software_versions
from mpibench.models import ModelError, ModelInfo, inspect_model
from mpibench.placement import choose_threads, describe, fit_warnings, placement
from mpibench.progress import Progress
from mpibench.scheduler import Assignment, Scheduler
from mpibench.store.hdf5 import write_results
from mpibench.store.journal import Journal
from mpibench.tasks import expand
from mpibench.worker import Worker

RESULTS_FILE, JOURNAL_FILE, HEADER_FILE = "results.h5", "journal.jsonl", "run.json"
HDF5_REFRESH_S = 30.0


class RunError(Exception):
    """A problem with the launch or the output directory; the message says what to do."""


def prepare_run_dir(config: SweepConfig, run_id: str, force: bool) -> Path:
    run_dir = Path(config.out or f"results/{run_id}")
    if run_dir.exists() and not run_dir.is_dir():
        raise RunError(f"output {run_dir} exists and is not a directory")
    existing = [run_dir / n for n in (RESULTS_FILE, JOURNAL_FILE, HEADER_FILE, "plots") if (run_dir / n).exists()]
    if existing and not force:
        raise RunError(f"output {run_dir} already holds a run; choose another --out or pass --force to replace it")
    try:
        run_dir.mkdir(parents=True, exist_ok=True)
        for path in existing:
            shutil.rmtree(path) if path.is_dir() else path.unlink()
        probe = run_dir / ".write-test"
        probe.write_text("")
        probe.unlink()
    except OSError as error:
        raise RunError(f"cannot write to output directory {run_dir}: {error.strerror}") from None
    return run_dir


def make_job(config: SweepConfig, models: dict[str, ModelInfo], prompts: dict[str, str]):
    def job(assignment: Assignment) -> dict:
        task, model = assignment.task, models[assignment.task.model]
        return {
            "task": asdict(task), "cores": list(assignment.cores), "model_path": model.path,
            "prompt_format": model.prompt_format, "prompt_text": prompts[task.prompt_id],
            "max_tokens": config.max_tokens, "n_ctx": config.n_ctx, "seed": config.seed,
        }
    return job


def serve(comm, rank: int) -> int:
    """A worker rank: run jobs until rank 0 says stop; returns the exit code it sends."""
    worker = Worker(rank)
    try:
        while True:
            tag, message = mpi.receive_from_coordinator(comm)
            if tag == mpi.TAG_STOP:
                return message
            mpi.send_result(comm, worker.execute(message))
    finally:
        worker.close()


def _terminate(signum, frame):
    raise SystemExit(128 + signum)


def coordinate_run(comm, config: SweepConfig, config_toml: str, facts: list[dict], force: bool, draw_plots: bool) -> int:
    """Rank 0: validate, plan, run every task, and write results.h5 (also when interrupted)."""
    place = placement(facts)
    threads = choose_threads(config, place)
    for line in describe(place):
        print(f"mpibench: {line}", file=sys.stderr)
    for line in fit_warnings(threads, place):
        print(f"mpibench: warning: {line}", file=sys.stderr)
    models = {m.name: inspect_model(m) for m in config.models}
    tasks = expand(config, threads)
    scheduler = Scheduler(tasks, place.worker_nodes, place.worker_node_cores)
    run_id = time.strftime("%Y%m%d-%H%M%S") + "-" + config.hash()[:6]
    run_dir = prepare_run_dir(config, run_id, force)
    header = {
        "run_id": run_id, "mpibench_version": __version__, "config_hash": config.hash(),
        "config_json": config.canonical_json(), "config_toml": config_toml,
        "mpi_library_version": mpi.library_version(), "world_size": comm.size, "total_tasks": len(tasks),
        "started": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "status": "running", "software": software_versions(),
        "launch": launcher.launch_environment(),
        "hosts": [dict(f["host"], cpus=format_cpu_list(place.node_cores[f["hostname"]]))
                  for f in {f["hostname"]: f for f in facts}.values()],
        "workers": [{"rank": i, "hostname": f["hostname"], "pid": f["pid"], "cpus": format_cpu_list(f["cpus"])}
                    for i, f in enumerate(facts)],
        "models": [asdict(m) for m in models.values()],
        "prompts": [{"id": p.id, "category": p.category, "text": p.text} for p in config.prompts],
    }
    (run_dir / HEADER_FILE).write_text(json.dumps(header, indent=1, sort_keys=True))
    journal, records = Journal(run_dir / JOURNAL_FILE), []
    last_write = time.monotonic()

    def store(record: dict) -> None:
        nonlocal last_write
        journal.append(record)
        records.append(record)
        if time.monotonic() - last_write > HDF5_REFRESH_S:
            write_results(run_dir / RESULTS_FILE, header, records)
            last_write = time.monotonic()

    prompts = {p.id: p.text for p in config.prompts}
    local_worker = Worker(0) if comm.size == 1 else None
    transport = mpi.LocalTransport(local_worker.execute) if local_worker else mpi.MpiTransport(comm)
    print(f"mpibench: run {run_id}: {len(tasks)} tasks ({len(models)} models x {len(prompts)} prompts x "
          f"threads {','.join(map(str, threads))} x {config.repetitions} reps) on {comm.size} ranks -> {run_dir}",
          file=sys.stderr)
    signal.signal(signal.SIGTERM, _terminate)
    wall, cpu = time.monotonic(), resource.getrusage(resource.RUSAGE_SELF)
    try:
        done, failed = coordinate(scheduler, make_job(config, models, prompts), transport, store, Progress(len(tasks)))
        header["status"] = "complete"
    finally:
        used = resource.getrusage(resource.RUSAGE_SELF)
        header.update(finished=time.strftime("%Y-%m-%dT%H:%M:%S%z"), wall_s=time.monotonic() - wall,
                      coordinator_cpu_s=used.ru_utime + used.ru_stime - cpu.ru_utime - cpu.ru_stime)
        if header["status"] != "complete":
            header["status"] = "interrupted"
        journal.close()
        write_results(run_dir / RESULTS_FILE, header, records)
        if local_worker:
            local_worker.close()
    for rank in place.worker_nodes:
        if rank != 0:
            transport.stop(rank, 0)
    print(f"mpibench: {done - failed} tasks ok, {failed} failed; rank 0 used "
          f"{header['coordinator_cpu_s']:.2f} s CPU in {header['wall_s']:.1f} s wall "
          f"({100 * header['coordinator_cpu_s'] / max(header['wall_s'], 1e-9):.1f} %)", file=sys.stderr)
    if draw_plots and config.plots:
        from analysis.plots import draw_all

        for path in draw_all(run_dir / RESULTS_FILE, run_dir / "plots"):
            print(f"mpibench: plot {path}", file=sys.stderr)
    print(f"mpibench: results in {run_dir / RESULTS_FILE}", file=sys.stderr)
    return 1 if failed else 0


def run(config_loader, force: bool, draw_plots: bool) -> int:
    """Entry of `mpibench run` on every rank. `config_loader` returns (config, toml text) on rank 0."""
    try:
        comm = mpi.comm_world()
        launcher.check_world_size(comm.size)
    except launcher.LaunchError as error:
        print(f"mpibench: error: {error}", file=sys.stderr)
        return 2
    facts = mpi.gather(comm, dict(rank_facts(), node=mpi.node_leader(comm)))
    if comm.rank != 0:
        return serve(comm, comm.rank)
    try:
        config, config_toml = config_loader()
        return coordinate_run(comm, config, config_toml, facts, force, draw_plots)
    except (ConfigError, launcher.LaunchError, ModelError, RunError) as error:
        print(f"mpibench: error: {error}", file=sys.stderr)
        transport = mpi.MpiTransport(comm)
        for rank in range(1, comm.size):
            transport.stop(rank, 2)
        return 2
