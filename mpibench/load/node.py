"""A node's side of a load point: its load runners, kept while consecutive points share model, server
configuration and cores (a model loads once per series), and the generator (load/generator.py, which pins itself
to the one core no runner uses).

Rank 0 first has the node prepare a point (start its runners: LoadPrepare -> LoadReady), then sends the point with
the wall-clock time it starts at, the same for every replica of it; each node turns that into its own monotonic
clock's t0, so every request time of a node stays on one node-local clock.

The runners start with the engine settings their model's preflight chose, found once per model by the worker as
for the study's tasks (worker.py, preflight.py): on a host where llama.cpp as built dies, they run with the
fallback instead. Each runner's entry in the point's runners_json says what it ran with, where, and why.
"""

from __future__ import annotations

import json
import socket
import time
from collections.abc import Callable
from dataclasses import asdict, replace

from mpibench.load.generator import run_point
from mpibench.load.runners import RunnerError, runner_cores, start_runners
from mpibench.protocol import OK, LoadPoint, LoadPointReply, LoadReady

READY_LIMIT_S = 1800.0  # how long the runners of a point may take to load their model


def runner_key(point: LoadPoint) -> tuple:
    """What a point's runners are: consecutive points with the same key keep them."""
    return (point.model_path, point.server, point.cores, point.generator_core, point.n_ctx, point.seed,
            point.prompt_format)


def monotonic_t0(start_unix: float, clock_ns=time.monotonic_ns, wall=time.time) -> int | None:
    """This node's monotonic time (ns) at the wall-clock time `start_unix`; None for 0 (start now)."""
    return clock_ns() + round((start_unix - wall()) * 1e9) if start_unix else None


class LoadNode:
    def __init__(self, engine: Callable):
        """`engine(point, cores)` is the worker's engine choice (worker.EngineChoice) for the point's model, its
        preflight run on `cores` the first time."""
        self.hostname, self.engine = socket.gethostname(), engine
        self.runners: list = []
        self.recorded: dict = {}  # what the engine choice records (preflight, engine_fallback), for runners_json
        self.key: tuple | None = None

    def prepare(self, point: LoadPoint) -> LoadReady:
        """Start the point's runners unless this node has them already; LoadReady with the reason if they fail."""
        if runner_key(point) != self.key:
            self.close()
            try:
                choice = self.engine(point, runner_cores(point)[0])
                if choice.settings is None:
                    return LoadReady(point.index, self.hostname, choice.failure)
                self.runners, self.recorded = start_runners(point, choice.settings), choice.recorded()
                for runner in self.runners:
                    runner.wait_ready(READY_LIMIT_S)
            except RunnerError as error:
                self.close(kill=True)
                return LoadReady(point.index, self.hostname, f"{point.model}: {error}")
            self.key = runner_key(point)
        return LoadReady(point.index, self.hostname)

    def run(self, point: LoadPoint) -> LoadPointReply:
        """Run one load point from its start_unix (its runners started when they are not prepared); a point whose
        runners cannot start answers with the reason."""
        ready = self.prepare(point)
        if ready.error:
            return LoadPointReply(point.index, hostname=self.hostname, error=ready.error)
        reply = run_point(point, self.runners, t0_ns=monotonic_t0(point.start_unix))
        runners = json.dumps([dict(asdict(r.ready), hostname=self.hostname, **self.recorded) for r in self.runners])
        if any(r.status != OK for r in reply.requests):
            self.close(kill=True)  # a runner died, or requests were cut at the drain's end: start afresh
        return replace(reply, hostname=self.hostname, runners_json=runners)

    def close(self, kill: bool = False) -> None:
        for runner in self.runners:
            runner.close(kill)
        self.runners, self.key = [], None
