"""Rank 0 of a load test: plan it on this launch's nodes, run its series of points, journal each point, write
results.h5 at the end (also when interrupted) and conclude with the per-point table and the plots."""

from __future__ import annotations

import sys
from dataclasses import dataclass

from mpibench.config import ConfigError
from mpibench.load.config import LoadConfig
from mpibench.load.coordinator import START_LEAD_S, Series, coordinate_load
from mpibench.load.plan import LoadPlan, node_leaders, point_key
from mpibench.load.records import from_record, merge_replicas, point_record
from mpibench.load.sweep import next_sweep_shape
from mpibench.load.metrics import summarise
from mpibench.load.node import READY_LIMIT_S
from mpibench.memory import refusals
from mpibench.models import model_need
from mpibench.placement import describe, placement
from mpibench.protocol import LoadPoint, LoadPrepare
from mpibench.signals import Interrupted
from mpibench.store import rundir
from mpibench.table import counted

LOST_MARGIN_S = 120.0  # beyond a point's own length, how long rank 0 waits for its node


@dataclass(frozen=True)
class LoadOptions:
    force: bool = False
    resume: str | None = None
    draw_plots: bool = True
    quiet: bool = False
    allow_oversize: bool = False


def say(line: str) -> None:
    print(f"mpibench: {line}", file=sys.stderr, flush=True)


def check_memory(config: LoadConfig, servers, facts: list[dict]) -> None:
    """Refuse the models whose file and the KV cache of every sequence of a node exceed its available memory."""
    sequences = max(s.partitions * s.slots for s in servers)
    available: dict[str, int] = {}
    for fact in facts[1:] or facts:
        available[fact["hostname"]] = min(available.get(fact["hostname"], fact["mem_available"]), fact["mem_available"])
    lines = refusals({spec.name: model_need(spec) for spec in config.models}, config.n_ctx * sequences, available)
    if lines:
        raise ConfigError("; ".join(lines))


def silence_limit(job: LoadPrepare | LoadPoint) -> float:
    """How long rank 0 waits for a node's answer to a job before it counts the node lost: its runners' longest
    start, or the point's whole length (and the lead of a shared start), with a margin."""
    if isinstance(job, LoadPrepare):
        return READY_LIMIT_S + LOST_MARGIN_S
    phases = job.phases
    return START_LEAD_S + phases.ramp_up_s + phases.warmup_s + phases.duration_s + phases.cooldown_s + \
        phases.drain_s + LOST_MARGIN_S


def run_load(world_size: int, facts: list[dict], transport, launch: dict, config: LoadConfig, config_toml: str,
             options: LoadOptions) -> int:
    """Rank 0's whole load test; returns the exit code the job ends with (workers are stopped by the caller)."""
    place = placement(facts)
    for line in describe(place):
        say(line)
    plan = LoadPlan.make(config, config_toml, place, launch, options.resume, options.force)
    if not options.allow_oversize:
        check_memory(plan.config, plan.servers, facts)
    say(plan.summary())
    config, header, journal = plan.config, plan.header, rundir.open_journal(plan.run_dir)
    done = {key: from_record(record) for key, record in plan.done.items()}
    series = []
    for model in plan.models:
        for server in plan.servers:
            measured = [summarise(p, r, config.slos).point for p, r in sorted(done.values(), key=lambda d: d[0].index)
                        if p.model == model and p.server == server]
            shapes = [s for s in config.shapes() if point_key(model, server, s) not in plan.done]
            planner = (lambda rows, server=server: next_sweep_shape(config, server, rows)) if config.sweep else None
            series.append(Series(model, server, shapes, planner, measured))
    next_index = iter(range(max((p.index + 1 for p, _ in done.values()), default=0), 1 << 30))

    def make_points(model, server, shape, nodes):
        index = next(next_index)
        return [plan.point(index, model, server, shape, node, replica) for replica, node in enumerate(nodes)]

    def store(points, replies) -> dict:
        point = points[0]
        journal.append(point_record(point_key(point.model, point.server, point.shape), points, replies))
        point, reply = merge_replicas(points, replies)
        if reply.error:
            say(f"point {point.index} failed: {reply.error}")
            return {}
        row = summarise(point, reply, config.slos).point
        if not options.quiet:
            say(point_line(row))
        return row

    started = rundir.rank0_clock()
    stop_code, outcome = 0, None
    try:
        outcome = coordinate_load(series, node_leaders(place), plan.replicas, make_points, transport, store, say,
                                  silence_limit)
        header["status"] = "complete"
    except Interrupted as interrupt:
        stop_code = 128 + interrupt.signum
        say(f"{interrupt}: stopping; the points done are kept. Continue with: {plan.resume_command(world_size)}")
    finally:
        rundir.close_launch(plan.run_dir, header, journal, started)
    if outcome and outcome.lost_ranks:
        say(f"error: worker ranks {', '.join(map(str, outcome.lost_ranks))} stopped answering; continue with: "
            f"{plan.resume_command(world_size)}")
    failed = outcome.failed if outcome else 0
    conclude(plan, options, stop_code)
    return stop_code or (1 if failed else 0)


def point_line(row: dict) -> str:
    """A point's one line on stderr as it ends."""
    validity = "valid" if row["valid"] else f"invalid ({row['invalid_reasons']})"
    return (f"point {row['point']} {row['server']} {row['load']}: {counted(row['completed'], 'request')} in "
            f"{row['window_s']:.0f} s, {row['achieved_rps']:.2f}/s, {row['output_tok_s']:.1f} tok/s, TTFT p50 "
            f"{1e3 * row['ttft_p50_s']:.0f} ms, goodput {row['goodput_rps']:.2f}/s, {validity}")


def conclude(plan: LoadPlan, options: LoadOptions, stop_code: int) -> None:
    """The per-point table on stdout; the report and its plots when asked."""
    from mpibench.load.table import point_table
    from mpibench.store.hdf5 import read_results

    path = plan.run_dir / rundir.RESULTS_FILE
    loaded = read_results(path)
    if loaded.load_points:
        sys.stdout.write(point_table(loaded))
        sys.stdout.flush()
    if options.draw_plots and plan.config.plots and not stop_code and loaded.load_points:
        from analysis.report import write_report

        for written in write_report(path):  # with the plots it shows
            say(f"report {written}")
    say(f"results in {path}")
