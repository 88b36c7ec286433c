"""Rank 0's loop of a load test: hand load points to free nodes, journal each point as it comes back, and plan
a sweep's next point from its series' measurements. No MPI import: a transport carries the points.

A series is one (model, server configuration): its points run one after another (a sweep needs the last one's
measurements to plan the next), different series run on different nodes at once. A point is journalled (fsynced)
before it counts as done. Rank 0 polls slowly (a point lasts tens of seconds): it shares a node under load.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

from mpibench.polling import Backoff
from mpibench.protocol import LoadPoint, LoadPointReply, LoadShape, ServerConfig

POLL_S = 0.25  # rank 0 looks for finished points at most this often


@dataclass
class Series:
    """One (model, server configuration) and its load points: given (`shapes`), or planned (`plan_next`)."""

    model: str
    server: ServerConfig
    shapes: list[LoadShape]
    plan_next: Callable[[list[dict]], LoadShape | None] | None = None  # a sweep: measured points -> next shape
    measured: list[dict] = field(default_factory=list)  # the point rows measured so far, in order
    running: bool = False
    stopped: bool = False  # a point of a sweep failed: its plan cannot go on

    def next_shape(self) -> LoadShape | None:
        if self.running or self.stopped:
            return None
        if self.plan_next is not None:
            return self.plan_next(self.measured)
        return self.shapes.pop(0) if self.shapes else None


@dataclass
class LoadOutcome:
    points: int = 0
    failed: int = 0
    lost_ranks: list[int] = field(default_factory=list)


def coordinate_load(series: list[Series], nodes: dict[str, int], make_point: Callable[..., LoadPoint],
                    transport, store: Callable[[LoadPoint, LoadPointReply], dict], say: Callable[[str], None],
                    silence_limit: Callable[[LoadPoint], float], clock=time.monotonic, sleep=time.sleep) -> LoadOutcome:
    """Run every series to its end. `nodes`: node -> the rank that runs its points; `make_point(model, server,
    shape, node)` builds a point; `store(point, reply)` journals it and returns its measured row; a node silent
    past `silence_limit(point)` seconds is lost and its point failed."""
    outcome, backoff = LoadOutcome(), Backoff(longest=POLL_S, sleep=sleep)
    free = dict(nodes)  # node -> rank, idle
    running: dict[int, tuple[Series, LoadPoint, float]] = {}  # rank -> its series, point and start
    while True:
        for node, rank in list(free.items()):
            pick = next(((s, shape) for s in series if (shape := s.next_shape()) is not None), None)
            if pick is None:
                break
            chosen, shape = pick
            point = make_point(chosen.model, chosen.server, shape, node)
            chosen.running = True
            transport.send_job(rank, point)
            running[rank] = (chosen, point, clock())
            del free[node]
            say(f"point {point.index}: {chosen.model} {chosen.server.label} under {shape.label} on {node}")
        if not running:
            return outcome
        reply = transport.poll()
        if reply is None:
            for rank, (chosen, point, started) in list(running.items()):
                if clock() - started > silence_limit(point):
                    outcome.lost_ranks.append(rank)
                    store(point, LoadPointReply(point.index, error=f"rank {rank} stopped answering"))
                    outcome.failed += 1
                    chosen.running, chosen.stopped = False, chosen.plan_next is not None
                    del running[rank]
            backoff.sleep()
            continue
        backoff.reset()
        rank, answer = reply
        chosen, point, _ = running.pop(rank)
        row = store(point, answer)
        outcome.points += 1
        outcome.failed += bool(answer.error)
        chosen.running = False
        if answer.error:
            chosen.stopped = chosen.plan_next is not None
        else:
            chosen.measured.append(row)
        free[next(n for n, r in nodes.items() if r == rank)] = rank
