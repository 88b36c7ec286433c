"""One `mpibench run` on every rank: placement, validation and planning on rank 0, then coordinate or serve.

Workers never parse the configuration: rank 0 validates everything (config, model files, thread counts
against the cores each node offers, the output directory) before any task starts, and on error tells
the workers to stop with the same exit code. SIGINT and SIGTERM (Slurm's time limit) stop every rank
cleanly: workers kill their runner, rank 0 keeps the results already on their way, writes everything and
leaves a run directory that `mpibench run --resume DIR` continues.
"""

from __future__ import annotations

import resource
import shutil
import signal
import sys
import time
from dataclasses import asdict, replace
from pathlib import Path

from mpibench import __version__, launcher, mpi
from mpibench.affinity import format_cpu_list
from mpibench.config import ConfigError, SweepConfig, bench_tests, config_from_json, differing_keys, warmup_runs
from mpibench.coordinator import coordinate, drain
from mpibench.deadline import worker_silence_limit
from mpibench.metadata import rank_facts, software_versions
from mpibench.launcher import LaunchError
from mpibench.models import ModelError, ModelInfo, inspect_model
from mpibench.placement import choose_threads, describe, fit_warnings, placement
from mpibench.progress import Progress
from mpibench.scheduler import Assignment, Scheduler
from mpibench.store.hdf5 import write_results
from mpibench.store.journal import Journal
from mpibench.store.scores import SCORES_FILE
from mpibench.store.rundir import HEADER_FILE, JOURNAL_FILE, RESULTS_FILE, RunDirError, read_run, write_header
from mpibench.tasks import expand
from mpibench.worker import Worker

HDF5_REFRESH_S = 30.0
# what --force replaces (and judge-*/)
RUN_FILES = (RESULTS_FILE, JOURNAL_FILE, HEADER_FILE, "plots", SCORES_FILE, "report.html", "report.md")
DRAIN_S = 2.0  # after an interrupt, how long rank 0 keeps results already on their way
STOP_WAIT_S = 30.0  # after an interrupt, how long a worker waits for rank 0's stop


class RunError(Exception):
    """A problem with the launch or the output directory; the message says what to do."""


class Interrupted(Exception):
    """SIGINT or SIGTERM arrived."""

    def __init__(self, signum: int):
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


def _interrupt(signum, frame):
    raise Interrupted(signum)


def prepare_run_dir(config: SweepConfig, run_id: str, force: bool) -> Path:
    run_dir = Path(config.out or f"results/{run_id}")
    if run_dir.exists() and not run_dir.is_dir():
        raise RunError(f"output {run_dir} exists and is not a directory")
    existing = [p for p in run_dir.glob("*") if p.name in RUN_FILES or p.name.startswith("judge-")] \
        if run_dir.is_dir() else []
    if existing and not force:
        raise RunError(f"output {run_dir} already holds a run; continue it with --resume {run_dir}, "
                       "choose another --out, or pass --force to replace it")
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


def resumed_config(run_dir: Path, header: dict, given: SweepConfig | None) -> SweepConfig:
    """The run's own configuration; one given again must measure the same (its output may differ)."""
    stored = config_from_json(header["config_json"])
    if given is None:
        return replace(stored, out=str(run_dir))
    if given.hash() != header["config_hash"]:
        keys = ", ".join(differing_keys(stored, given))
        raise RunError(f"{run_dir} was run with a different configuration ({keys} differ); resume with the "
                       f"same configuration, or with none to use the run's own")
    return replace(given, out=str(run_dir))


def task_request(config: SweepConfig, prompts: dict[str, str], task) -> tuple[dict, int]:
    """What the runner is asked to do for a task, and how many tokens it may produce."""
    if task.kind == "bench":
        size = int(task.prompt_id[2:])
        test = {"n_prompt": size, "n_gen": 0} if task.prompt_id.startswith("pp") else {"n_prompt": 0, "n_gen": size}
        return {"bench": test}, size
    return {"prompt": prompts[task.prompt_id], "max_tokens": config.max_tokens}, config.max_tokens


def make_job(config: SweepConfig, models: dict[str, ModelInfo], prompts: dict[str, str]):
    def job(assignment: Assignment) -> dict:
        task, model = assignment.task, models[assignment.task.model]
        request, max_tokens = task_request(config, prompts, task)
        return {
            "task": asdict(task), "cores": list(assignment.cores), "model_path": model.path,
            "prompt_format": model.prompt_format, "request": request, "max_tokens": max_tokens,
            "n_ctx": config.n_ctx, "seed": config.seed, "timeout": config.timeout,
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
    except Interrupted as interrupt:
        worker.close(kill=True)  # a measuring runner's task is the one this interrupt costs
        stop = mpi.receive_from_coordinator(comm, within=STOP_WAIT_S)
        return stop[1] if stop else 128 + interrupt.signum
    finally:
        worker.close()


def _header(run_id: str, config: SweepConfig, config_toml: str, threads, n_tasks: int, comm, facts, place,
            models: dict[str, ModelInfo]) -> dict:
    return {
        "run_id": run_id, "mpibench_version": __version__, "config_hash": config.hash(),
        "config_json": config.canonical_json(), "config_toml": config_toml, "threads": list(threads),
        "mpi_library_version": mpi.library_version(), "world_size": comm.size, "total_tasks": n_tasks,
        "started": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "status": "running", "software": software_versions(),
        "launch": launcher.launch_environment(),
        "hosts": [dict(f["host"], cpus=format_cpu_list(place.node_cores[f["hostname"]]))
                  for f in {f["hostname"]: f for f in facts}.values()],
        "workers": [{"rank": i, "hostname": f["hostname"], "pid": f["pid"], "cpus": format_cpu_list(f["cpus"])}
                    for i, f in enumerate(facts)],
        "models": [asdict(m) for m in models.values()],
        "prompts": [{"id": p.id, "category": p.category, "text": p.text} for p in config.prompts],
    }


def coordinate_run(comm, config: SweepConfig | None, config_toml: str, facts: list[dict], force: bool,
                   draw_plots: bool, resume: str | None = None, retry_failed: bool = False,
                   report: bool = True) -> int:
    """Rank 0: validate, plan, run every task not yet done, and write results.h5 (also when interrupted)."""
    place = placement(facts)
    if resume:
        run_dir = Path(resume)
        try:
            old_header, previous = read_run(run_dir)
        except RunDirError as error:
            raise RunError(str(error)) from None
        config = resumed_config(run_dir, old_header, config)
        threads = tuple(old_header["threads"])
        choose_threads(replace(config, threads=threads), place)  # the counts must fit this launch too
    else:
        threads = choose_threads(config, place)
    for line in describe(place):
        print(f"mpibench: {line}", file=sys.stderr)
    for line in fit_warnings(threads, place):
        print(f"mpibench: warning: {line}", file=sys.stderr)
    models = {m.name: inspect_model(m) for m in config.models}
    all_tasks = expand(config, threads)
    if resume:
        records = [r for r in previous if r["status"] == "ok" or not retry_failed]  # what stays done
        header = dict(_header(old_header["run_id"], config, old_header.get("config_toml", ""), threads,
                              len(all_tasks), comm, facts, place, models),
                      started=old_header["started"],
                      resumes=old_header.get("resumes", []) + [time.strftime("%Y-%m-%dT%H:%M:%S%z")])
    else:
        records = []
        run_id = time.strftime("%Y%m%d-%H%M%S") + "-" + config.hash()[:6]
        run_dir = prepare_run_dir(config, run_id, force)
        header = _header(run_id, config, config_toml, threads, len(all_tasks), comm, facts, place, models)
    done_ids = {r["task_id"] for r in records}
    tasks = [t for t in all_tasks if t.id not in done_ids]
    write_header(run_dir, header)
    journal = Journal(run_dir / JOURNAL_FILE)
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
    skipped = f", {len(all_tasks) - len(tasks)} already done" if resume else ""
    items = f"tests {','.join(bench_tests(config))}" if config.kind == "bench" else f"{len(prompts)} prompts"
    warmups = f" + {warmup_runs(config)} warmups" if warmup_runs(config) else ""
    print(f"mpibench: run {header['run_id']}: {len(tasks)} tasks{skipped} ({len(models)} models x {items} x "
          f"threads {','.join(map(str, threads))} x {config.repetitions} reps{warmups}) on {comm.size} ranks "
          f"-> {run_dir}", file=sys.stderr)
    wall, cpu = time.monotonic(), resource.getrusage(resource.RUSAGE_SELF)
    outcome, stop_code = None, 0
    try:
        if tasks:
            scheduler = Scheduler(tasks, place.worker_nodes, place.worker_node_cores)
            outcome = coordinate(scheduler, make_job(config, models, prompts), transport, store,
                                 Progress(len(tasks)), worker_silence_limit(config.timeout))
        header["status"] = "complete"
    except Interrupted as interrupt:
        stop_code = 128 + interrupt.signum
        kept = drain(transport, store, DRAIN_S) if not local_worker else 0
        print(f"mpibench: {interrupt}: stopping; kept {kept} results in flight. Continue with: "
              f"mpibench run --resume {run_dir}", file=sys.stderr)
    finally:
        used = resource.getrusage(resource.RUSAGE_SELF)
        header.update(finished=time.strftime("%Y-%m-%dT%H:%M:%S%z"), wall_s=time.monotonic() - wall,
                      coordinator_cpu_s=used.ru_utime + used.ru_stime - cpu.ru_utime - cpu.ru_stime)
        if header["status"] != "complete":
            header["status"] = "interrupted"
        journal.close()
        write_header(run_dir, header)
        write_results(run_dir / RESULTS_FILE, header, records)
        if local_worker:
            local_worker.close(kill=header["status"] != "complete")
    lost = outcome.lost_ranks if outcome else []
    for rank in place.worker_nodes:
        if rank != 0 and rank not in lost:
            transport.stop(rank, stop_code)
    failed = sum(r["status"] != "ok" for r in records)
    print(f"mpibench: {len(records) - failed} tasks ok, {failed} failed or not run; rank 0 used "
          f"{header['coordinator_cpu_s']:.2f} s CPU in {header['wall_s']:.1f} s wall "
          f"({100 * header['coordinator_cpu_s'] / max(header['wall_s'], 1e-9):.1f} %)", file=sys.stderr)
    if draw_plots and config.plots and not stop_code and len(records) > failed:
        if report:  # the report draws the plots it shows
            from analysis.report import write_report

            for path in write_report(run_dir / RESULTS_FILE):
                print(f"mpibench: report {path}", file=sys.stderr)
        else:
            from analysis.plots import draw_all

            for path in draw_all(run_dir / RESULTS_FILE, run_dir / "plots"):
                print(f"mpibench: plot {path}", file=sys.stderr)
    print(f"mpibench: results in {run_dir / RESULTS_FILE}", file=sys.stderr)
    if lost:
        print(f"mpibench: error: worker ranks {', '.join(map(str, lost))} stopped answering; their tasks in flight "
              f"are recorded as failed. Retry them with: mpibench run --resume {run_dir} --retry-failed",
              file=sys.stderr)
        mpi.abort(comm, 1)  # a silent rank cannot take part in a clean MPI shutdown
    return stop_code or (1 if failed else 0)


def run(config_loader, force: bool, draw_plots: bool, resume: str | None = None, retry_failed: bool = False,
        report: bool = True) -> int:
    """Entry of `mpibench run` on every rank. `config_loader` returns (config or None, toml text) on rank 0."""
    try:
        comm = mpi.comm_world()
        launcher.check_world_size(comm.size)
    except LaunchError as error:
        print(f"mpibench: error: {error}", file=sys.stderr)
        return 2
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, _interrupt)
    facts = mpi.gather(comm, dict(rank_facts(), node=mpi.node_leader(comm)))
    if comm.rank != 0:
        return serve(comm, comm.rank)
    try:
        config, config_toml = config_loader()
        return coordinate_run(comm, config, config_toml, facts, force, draw_plots, resume, retry_failed, report)
    except (ConfigError, LaunchError, ModelError, RunError) as error:
        print(f"mpibench: error: {error}", file=sys.stderr)
        transport = mpi.MpiTransport(comm)
        for rank in range(1, comm.size):
            transport.stop(rank, 2)
        return 2
