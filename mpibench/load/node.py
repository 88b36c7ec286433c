"""A node's side of a load point: its load runners, kept while consecutive points share model, server
configuration and cores (a model loads once per series), and the generator, run in this worker process pinned to
the one core no runner uses."""

from __future__ import annotations

import os
import socket

from mpibench.load.generator import run_point
from mpibench.load.runners import RunnerError, start_runners
from mpibench.protocol import LoadPoint, LoadPointReply


class LoadNode:
    def __init__(self):
        self.hostname = socket.gethostname()
        self.runners: list = []
        self.key: tuple | None = None

    def run(self, point: LoadPoint) -> LoadPointReply:
        """Run one load point; a point whose runners cannot start answers with the reason."""
        key = (point.model_path, point.server, point.cores, point.n_ctx, point.seed, point.prompt_format)
        if key != self.key:
            self.close()
            try:
                self.runners = start_runners(point)
            except RunnerError as error:
                return LoadPointReply(point.index, hostname=self.hostname, error=f"{point.model}: {error}")
            self.key = key
        affinity = os.sched_getaffinity(0)
        os.sched_setaffinity(0, {point.generator_core})
        try:
            reply = run_point(point, self.runners)
        finally:
            os.sched_setaffinity(0, affinity)
        if any(r.status != "ok" for r in reply.requests) and any(not r.alive for r in self.runners):
            self.close()  # a runner died: the next point starts them afresh
        return reply

    def close(self, kill: bool = False) -> None:
        for runner in self.runners:
            runner.close(kill)
        self.runners, self.key = [], None
