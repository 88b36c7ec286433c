"""A node's side of a load point: its load runners, kept while consecutive points share model, server
configuration and cores (a model loads once per series), and the generator (load/generator.py, which pins itself
to the one core no runner uses).

The runners start with the engine settings their model's preflight chose, found once per model by the worker as
for the study's tasks (worker.py, preflight.py): on a host where llama.cpp as built dies, they run with the
fallback instead. Each runner's entry in the point's runners_json says what it ran with, where, and why."""

from __future__ import annotations

import json
import socket
from collections.abc import Callable
from dataclasses import asdict, replace

from mpibench.load.generator import run_point
from mpibench.load.runners import RunnerError, runner_cores, start_runners
from mpibench.protocol import OK, LoadPoint, LoadPointReply

READY_LIMIT_S = 1800.0  # how long the runners of a point may take to load their model


class LoadNode:
    def __init__(self, engine: Callable):
        """`engine(point, cores)` is the worker's engine choice (worker.EngineChoice) for the point's model, its
        preflight run on `cores` the first time."""
        self.hostname, self.engine = socket.gethostname(), engine
        self.runners: list = []
        self.recorded: dict = {}  # what the engine choice records (preflight, engine_fallback), for runners_json
        self.key: tuple | None = None

    def run(self, point: LoadPoint) -> LoadPointReply:
        """Run one load point; a point whose runners cannot start answers with the reason."""
        key = (point.model_path, point.server, point.cores, point.generator_core, point.n_ctx, point.seed,
               point.prompt_format)
        if key != self.key:
            self.close()
            try:
                choice = self.engine(point, runner_cores(point)[0])
                if choice.settings is None:
                    return LoadPointReply(point.index, hostname=self.hostname, error=choice.failure)
                self.runners, self.recorded = start_runners(point, choice.settings), choice.recorded()
                for runner in self.runners:
                    runner.wait_ready(READY_LIMIT_S)
            except RunnerError as error:
                self.close(kill=True)
                return LoadPointReply(point.index, hostname=self.hostname, error=f"{point.model}: {error}")
            self.key = key
        reply = run_point(point, self.runners)
        runners = json.dumps([dict(asdict(r.ready), hostname=self.hostname, **self.recorded) for r in self.runners])
        if any(r.status != OK for r in reply.requests):
            self.close(kill=True)  # a runner died, or requests were cut at the drain's end: start afresh
        return replace(reply, hostname=self.hostname, runners_json=runners)

    def close(self, kill: bool = False) -> None:
        for runner in self.runners:
            runner.close(kill)
        self.runners, self.key = [], None
