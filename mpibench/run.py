"""The one entry of every MPI job (run, bench, load, the judge): world check, signals, rank split, abort guard.

Workers never parse the configuration: rank 0 validates everything (config, model files, thread counts
against the cores each node offers, the output directory) before any task starts, and on error tells
the workers to stop with the same exit code. SIGINT and SIGTERM (Slurm's time limit) stop every rank
cleanly: workers kill their runner, rank 0 keeps the results already on their way, writes everything and
leaves a run directory that `mpibench run --resume DIR` continues. An exception on any rank aborts every
rank with one line instead of leaving them waiting.
"""

from __future__ import annotations

import sys
import traceback
from collections import Counter
from collections.abc import Callable
from dataclasses import asdict, dataclass, replace
from pathlib import Path

from mpibench import __version__, launcher, mpi
from mpibench.affinity import format_cpu_list
from mpibench.config import ConfigError, SweepConfig, bench_test_sizes, bench_tests, config_from_json, \
    differing_keys, warmup_runs
from mpibench.coordinator import coordinate, drain, probe_nodes
from mpibench.deadline import worker_silence_limit
from mpibench.launcher import LaunchError
from mpibench.metadata import rank_facts, software_versions, timestamp
from mpibench.memory import refusals
from mpibench.models import ModelError, ModelInfo, inspect_model, model_need
from mpibench.placement import choose_threads, describe, fit_warnings, placement
from mpibench.probe import core_sets
from mpibench.progress import STATUS_INTERVAL_S, Progress
from mpibench.protocol import OK, Job, ProbeRequest, Request, result_row
from mpibench.roofline import bandwidth_lines
from mpibench.scheduler import Assignment, Scheduler
from mpibench.signals import Interrupted, raise_on_interrupt
from mpibench.store import rundir
from mpibench.table import counted
from mpibench.tasks import Task, expand
from mpibench.worker import Worker

DRAIN_S = 2.0  # after an interrupt, how long rank 0 keeps results already on their way
REASON_CHARS = 300  # of a failure's error, what the end of a run shows
LAUNCH_CHECKED = ("mpi_library_version", "software")  # a resuming launch that differs here is warned about


def say(line: str) -> None:
    print(f"mpibench: {line}", file=sys.stderr)


@dataclass(frozen=True)
class Options:
    """How rank 0 runs a sweep, beside its configuration."""

    force: bool = False
    draw_plots: bool = True
    report: bool = True
    resume: str | None = None
    retry_failed: bool = False
    output_format: str | None = None  # the cell table printed to stdout at the end (export's formats); None: none
    dry_run: bool = False  # print the plan and an estimate, measure and write nothing
    quiet: bool = False  # no progress on rank 0's stderr
    status_interval: float = STATUS_INTERVAL_S  # seconds between status lines off a terminal

    def progress(self, total: int) -> Progress:
        return Progress(total, interval=self.status_interval, quiet=self.quiet)
    allow_oversize: bool = False  # run models that the memory guard would refuse


def guarded(job: Callable[[], int]) -> int:
    """Run an MPI job on this rank; an exception aborts every rank with one line instead of leaving them waiting."""
    try:
        return job()
    except BaseException as error:
        comm = mpi.comm_world()
        if comm.size > 1:  # never leave the other ranks waiting forever
            if not isinstance(error, (KeyboardInterrupt, SystemExit)):
                traceback.print_exc()
            print(f"mpibench: rank {comm.rank} failed; aborting the MPI job", file=sys.stderr)
            mpi.abort(comm, 1)
        raise


def sweep(load_config: Callable[[], tuple[SweepConfig, str]], options: Options,
          finish: Callable[[Path, int], int] | None = None) -> int:
    """Every rank of a sweep job. Rank 0 gets (config, its TOML text) from `load_config`, runs the
    sweep and then `finish(run_dir, exit code)` when given; the other ranks serve it."""
    return guarded(lambda: _split(lambda comm, facts: _coordinate_sweep(comm, facts, load_config, options, finish)))


def load(load_config: Callable, options) -> int:
    """Every rank of a load test (mpibench/load/driver.py): rank 0 gets (config, its TOML text) from `load_config`
    and runs the test; the other ranks serve its points (a node's first worker rank) or wait for the end."""
    return guarded(lambda: _split(lambda comm, facts: _coordinate_load(comm, facts, load_config, options)))


def _coordinate_load(comm, facts, load_config, options) -> int:
    from mpibench.load.driver import run_load

    config, config_toml = load_config()
    local_worker = Worker(0) if comm.size == 1 else None
    transport = mpi.LocalTransport(local_worker.execute) if local_worker else mpi.MpiTransport(comm)
    try:
        code = run_load(comm.size, facts, transport, launch_facts(comm.size, facts, placement(facts)), config,
                        config_toml, options)
    finally:
        if local_worker:
            local_worker.close()
    for rank in range(1, comm.size):
        transport.stop(rank, code if code >= 128 else 0)
    return code


def _split(rank0: Callable) -> int:
    try:
        comm = mpi.comm_world()
        launcher.check_world_size(comm.size)
    except LaunchError as error:
        say(f"error: {error}")
        return 2
    raise_on_interrupt()
    facts = mpi.gather(comm, dict(rank_facts(), node=mpi.node_leader(comm)))
    if comm.rank != 0:
        return Worker(comm.rank).serve(mpi.WorkerChannel(comm))
    try:
        return rank0(comm, facts)
    except (ConfigError, LaunchError, ModelError, rundir.RunDirError) as error:
        say(f"error: {error}")
        transport = mpi.MpiTransport(comm)
        for rank in range(1, comm.size):
            transport.stop(rank, 2)
        return 2


def _coordinate_sweep(comm, facts, load_config, options: Options, finish) -> int:
    config, config_toml = load_config()
    plan = Plan.make(comm.size, facts, config, config_toml, options)
    if options.dry_run:
        print(plan.dry_run())
        transport = mpi.MpiTransport(comm)
        for rank in range(1, comm.size):
            transport.stop(rank, 0)
        return 0
    return coordinate_run(comm, plan, options, finish)


def coordinate_run(comm, plan: Plan, options: Options, finish=None) -> int:
    """Rank 0: run every task of the plan not yet done; results.h5 is written at the end, also when interrupted."""
    local_worker = Worker(0) if comm.size == 1 else None
    transport = mpi.LocalTransport(local_worker.execute) if local_worker else mpi.MpiTransport(comm)
    journal, header = rundir.open_journal(plan.run_dir), plan.header
    started = rundir.rank0_clock()
    outcome, stop_code = None, 0
    try:
        if plan.tasks:
            plan.probe_bandwidth(transport)  # a measurement, not coordination: kept out of wall_s and rank 0's CPU
            started = rundir.rank0_clock()
            scheduler = Scheduler(plan.tasks, plan.place.worker_nodes, plan.place.worker_node_cores)
            outcome = coordinate(scheduler, plan.job, transport, lambda r: journal.append(result_row(r)),
                                 options.progress(len(plan.tasks)), worker_silence_limit(plan.config.timeout))
        header["status"] = "complete"
    except Interrupted as interrupt:
        stop_code = 128 + interrupt.signum
        kept = drain(transport, lambda r: journal.append(result_row(r)), DRAIN_S) if not local_worker else 0
        say(f"{interrupt}: stopping; kept {counted(kept, 'result')} in flight. Continue with: {plan.resume_command()}")
    finally:
        records = rundir.close_launch(plan.run_dir, header, journal, started)
        if local_worker:
            local_worker.close(kill=header["status"] != "complete")
    lost = outcome.lost_ranks if outcome else []
    for rank in plan.place.worker_nodes:
        if rank != 0 and rank not in lost:
            transport.stop(rank, stop_code)
    failed = plan.conclude(records, options, stop_code)
    if lost:
        say(f"error: worker ranks {', '.join(map(str, lost))} stopped answering; their tasks in flight are recorded "
            f"as failed. Retry them with: {plan.resume_command('--retry-failed')}")
        mpi.abort(comm, 1)  # a silent rank cannot take part in a clean MPI shutdown
    code = stop_code or (1 if failed else 0)
    return finish(plan.run_dir, code) if finish and not stop_code else code


@dataclass
class Plan:
    """What rank 0 runs: the validated configuration, placement, tasks still to do and the run's header."""

    config: SweepConfig
    place: object
    models: dict[str, ModelInfo]
    tasks: list[Task]
    run_dir: Path
    header: dict
    skipped: int
    world_size: int

    @classmethod
    def make(cls, world_size: int, facts: list[dict], config: SweepConfig, config_toml: str,
             options: Options) -> Plan:
        place = placement(facts)
        old_header, previous = rundir.read_run(options.resume) if options.resume else (None, [])
        if old_header:
            config = resumed_config(Path(options.resume), old_header, config)
            threads = tuple(old_header["threads"])
            choose_threads(replace(config, threads=threads), place)  # the counts must fit this launch too
        else:
            threads = choose_threads(config, place)
        for line in describe(place):
            say(line)  # a dry run says it too: it is what the run would use
        for line in fit_warnings(threads, place):
            say(f"warning: {line}")
        if not options.allow_oversize:
            check_memory(config, facts)
        models = {m.name: inspect_model(m) for m in config.models}
        all_tasks = expand(config, threads)
        this_launch = launch_facts(world_size, facts, place)
        if old_header:
            run_dir, header = Path(options.resume), resumed_header(old_header, this_launch, len(all_tasks))
            done = {r["task_id"] for r in previous if r["status"] == OK or not options.retry_failed}
        else:
            run_id = rundir.new_run_id(config.hash())
            run_dir, done = Path(config.out or f"results/{run_id}"), set()
            if options.dry_run:
                rundir.check_new(run_dir, options.force)  # what the run would refuse, a dry run refuses
            else:
                rundir.create(run_dir, options.force)
            header = new_header(run_id, config, config_toml, threads, len(all_tasks), models, this_launch)
        if not options.dry_run:
            rundir.write_header(run_dir, header)
        todo = [t for t in all_tasks if t.id not in done]
        plan = cls(config, place, models, todo, run_dir, header, len(all_tasks) - len(todo), world_size)
        say(plan.summary(threads, "would run" if options.dry_run else "run"))
        return plan

    def resume_command(self, *extra: str) -> str:
        """The command that continues this run, launched as this launch was."""
        return launcher.relaunch_command(self.world_size, "bench" if self.config.kind == "bench" else "run",
                                         ["--resume", str(self.run_dir), *extra])

    def summary(self, threads, verb: str) -> str:
        config = self.config
        skipped = f", {self.skipped} already done" if self.skipped else ""
        items = f"tests {','.join(bench_tests(config))}" if config.kind == "bench" else \
            counted(len(config.prompts), "prompt")
        warmups = f" + {counted(warmup_runs(config), 'warmup')}" if warmup_runs(config) else ""
        return (f"{verb} {self.header['run_id']}: {counted(len(self.tasks), 'task')}{skipped} "
                f"({counted(len(self.models), 'model')} x {items} x threads {','.join(map(str, threads))} x "
                f"{counted(config.repetitions, 'rep')}{warmups}) on {counted(self.world_size, 'rank')} -> {self.run_dir}")

    def dry_run(self) -> str:
        """What a run would do: its cells and an estimate of its duration from earlier runs in its results folder."""
        from mpibench.estimate import dry_run_lines, history

        folder = self.run_dir.parent
        past = history(rundir.previous_runs(folder))
        nodes = len(set(self.place.worker_nodes.values()))
        return "\n".join(dry_run_lines(self.config, self.models, self.tasks, nodes, past, folder))

    def probe_bandwidth(self, transport) -> None:
        """Each worker node's read bandwidth at the run's thread counts, on the cores its tasks get, measured by its
        first worker rank before any task; kept with this launch in run.json (written before the first task)."""
        threads, first = tuple(self.header["threads"]), {}
        for rank, node in sorted(self.place.worker_nodes.items()):
            first.setdefault(node, rank)
        rows, problems = probe_nodes(transport, {
            rank: (node, ProbeRequest(tuple(core_sets(self.place.node_cores[node], threads))))
            for node, rank in first.items()})
        for line in problems:
            say(f"warning: no read bandwidth for {line}; its tasks have no roofline")
        for line in bandwidth_lines([asdict(row) for row in rows]):
            say(line)
        self.header["launches"][-1]["bandwidth"] = [asdict(row) for row in rows]
        rundir.write_header(self.run_dir, self.header)

    def job(self, assignment: Assignment) -> Job:
        task, model = assignment.task, self.models[assignment.task.model]
        return Job(task, assignment.cores, model.path, model.prompt_format, task_request(self.config, task),
                   self.config.n_ctx, self.config.seed, self.config.timeout, model.synthetic)

    def conclude(self, records: list[dict], options: Options, stop_code: int) -> int:
        """Say how the run went and why tasks failed (each reason counted), print the cell table and draw the
        report (or plots) when asked; returns the tasks not ok."""
        failed = sum(r["status"] != OK for r in records)
        header = self.header
        say(f"{counted(len(records) - failed, 'task')} ok, {failed} failed or not run; rank 0 used "
            f"{header['coordinator_cpu_s']:.2f} s CPU in {header['wall_s']:.1f} s wall "
            f"({100 * header['coordinator_cpu_s'] / max(header['wall_s'], 1e-9):.1f} %)")
        for (status, reason), n in failure_reasons(records).most_common():
            say(f"  {counted(n, 'task')} {status}: {reason}")
        results = self.run_dir / rundir.RESULTS_FILE
        if options.output_format and len(records) > failed:
            from mpibench.export import render
            from mpibench.store.hdf5 import read_results

            sys.stdout.write(render(read_results(results), options.output_format))
            sys.stdout.flush()
        if options.draw_plots and self.config.plots and not stop_code and len(records) > failed:
            if options.report:  # the report draws the plots it shows
                from analysis.report import write_report

                for path in write_report(results):
                    say(f"report {path}")
            else:
                from analysis.plots import draw_all

                for path in draw_all(results, self.run_dir / rundir.PLOTS_DIR):
                    say(f"plot {path}")
        say(f"results in {results}")
        return failed


def failure_reasons(records: list[dict]) -> Counter:
    """(status, reason) -> how many tasks ended so; the reason is the error's first line, shortened."""
    return Counter((r["status"], (r["error"].strip().splitlines() or ["no reason recorded"])[0][:REASON_CHARS])
                   for r in records if r["status"] != OK)
def check_memory(config: SweepConfig, facts: list[dict]) -> None:
    """Refuse, before any file is generated or task started, the models whose file and KV cache exceed the
    memory a worker node has available (memory.refusals)."""
    n_ctx = max([config.n_ctx] + ([sum(bench_test_sizes(t)) for t in bench_tests(config)]
                                  if config.kind == "bench" else []))
    available: dict[str, int] = {}
    for fact in facts[1:] or facts:  # the worker ranks' nodes
        available[fact["hostname"]] = min(available.get(fact["hostname"], fact["mem_available"]), fact["mem_available"])
    lines = refusals({spec.name: model_need(spec) for spec in config.models}, n_ctx, available)
    if lines:
        raise ConfigError("; ".join(lines))


def task_request(config: SweepConfig, task: Task) -> Request:
    """What the runner is asked to do for a task."""
    if task.kind == "bench":
        n_prompt, n_gen = bench_test_sizes(task.prompt_id)
        return Request("bench", max_tokens=n_prompt + n_gen, n_prompt=n_prompt, n_gen=n_gen)
    prompt = next(p.text for p in config.prompts if p.id == task.prompt_id)
    return Request("query", prompt, config.max_tokens)


def stored_config(run_dir: str | Path) -> SweepConfig:
    """The configuration a run directory was run with: what the flags given with --resume change."""
    return config_from_json(rundir.read_header(run_dir)["config_json"])


def resumed_config(run_dir: Path, header: dict, given: SweepConfig) -> SweepConfig:
    """The run's configuration as given again (the stored one with the flags given on top): it must measure
    the same (its time limit and output may differ)."""
    stored = config_from_json(header["config_json"])
    if given.hash() != header["config_hash"]:
        keys = ", ".join(differing_keys(stored, given))
        raise rundir.RunDirError(f"{run_dir} was run with a different configuration ({keys} differ); resume with "
                                 f"the same configuration, or with none to use the run's own")
    return replace(given, out=str(run_dir))


def launch_facts(world_size: int, facts: list[dict], place) -> dict:
    """This launch: when, its MPI, software, launcher, hosts and worker ranks."""
    return {
        "started": timestamp(), "world_size": world_size, "mpi_library_version": mpi.library_version(),
        "software": software_versions(), "launch": launcher.launch_environment(),
        "hosts": [dict(f["host"], cpus=format_cpu_list(place.node_cores[f["hostname"]]))
                  for f in {f["hostname"]: f for f in facts}.values()],
        "workers": [{"rank": i, "hostname": f["hostname"], "pid": f["pid"], "cpus": format_cpu_list(f["cpus"])}
                    for i, f in enumerate(facts)],
    }


def new_header(run_id: str, config: SweepConfig, config_toml: str, threads, n_tasks: int,
               models: dict[str, ModelInfo], launch: dict) -> dict:
    """run.json of a new run: its identity and configuration, and its first launch's facts at the top."""
    return dict(
        launch, run_id=run_id, mpibench_version=__version__, config_hash=config.hash(),
        config_json=config.canonical_json(), config_toml=config_toml, threads=list(threads), total_tasks=n_tasks,
        status="running", models=[asdict(m) for m in models.values()], launches=[launch],
        prompts=[{"id": p.id, "category": p.category, "text": p.text} for p in config.prompts],
    )


def resumed_header(header: dict, launch: dict, n_tasks: int) -> dict:
    """run.json of a resumed run: the first launch's facts stay, this launch is added to `launches` and the
    hosts it brings join the run's; a launch whose MPI or software differ is warned about."""
    first = {k: header.get(k) for k in ("started", "world_size", "mpi_library_version", "software", "launch",
                                          "hosts", "workers")}
    launches = header.get("launches") or [first]
    for key in LAUNCH_CHECKED:
        if launch[key] != first[key]:
            say(f"warning: this launch's {key.replace('_', ' ')} differs from the run's first launch "
                f"({first[key]!r} then, {launch[key]!r} now): the run's cells mix them")
    known = {h["hostname"] for h in first["hosts"]}
    return dict(header, total_tasks=n_tasks, status="running", launches=launches + [launch],
                hosts=first["hosts"] + [h for h in launch["hosts"] if h["hostname"] not in known],
                resumes=header.get("resumes", []) + [launch["started"]])
