"""Rank 0's loop of a load test: hand load points to free nodes, journal each point as it comes back, and plan
a sweep's next point from its series' measurements. No MPI import: a transport carries the messages.

A series is one (model, server configuration): its points run one after another (a sweep needs the last one's
measurements to plan the next), different series run on different nodes at once. Each point runs on `replicas`
nodes: rank 0 has every one of them start the point's runners (LoadPrepare, answered by LoadReady), then sends
them the point with one wall-clock start a moment ahead, so that the replicas start together; the point is done
when every replica answered, and is journalled (fsynced) before it counts as done. Rank 0 polls slowly (a point
lasts tens of seconds): it shares a node under load.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace

from mpibench.polling import Backoff
from mpibench.protocol import LoadPoint, LoadPointReply, LoadPrepare, LoadReady, LoadShape, ServerConfig

POLL_S = 0.25  # rank 0 looks for finished points at most this often
START_LEAD_S = 1.0  # a replicated point starts this long after rank 0 sends it: every node has it by then


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
class Group:
    """One point on its replicas' nodes: being prepared, then running; `answers` of the present phase by rank."""

    series: Series
    points: dict[int, LoadPoint]  # rank -> its replica of the point
    since: float  # when the present phase began (rank 0's clock)
    running: bool = False
    answers: dict = field(default_factory=dict)

    def job(self, rank: int) -> LoadPrepare | LoadPoint:
        """What `rank` was last sent."""
        return self.points[rank] if self.running else LoadPrepare(self.points[rank])


@dataclass
class LoadOutcome:
    points: int = 0
    failed: int = 0
    lost_ranks: list[int] = field(default_factory=list)


def coordinate_load(series: list[Series], nodes: dict[str, int], replicas: int,
                    make_points: Callable[..., list[LoadPoint]], transport,
                    store: Callable[[list[LoadPoint], list[LoadPointReply]], dict], say: Callable[[str], None],
                    silence_limit: Callable[[LoadPrepare | LoadPoint], float], clock=time.monotonic, wall=time.time,
                    sleep=time.sleep) -> LoadOutcome:
    """Run every series to its end. `nodes`: node -> the rank that runs its points; `make_points(model, server,
    shape, nodes)` builds a point's replicas, one per node given, in order; `store(points, replies)` journals a point (its replicas
    and their replies, in replica order) and returns its measured row; a node silent past `silence_limit(job)`
    seconds after it was sent a job is lost, and the point fails."""
    outcome, backoff = LoadOutcome(), Backoff(longest=POLL_S, sleep=sleep)
    free = dict(nodes)  # node -> rank, idle
    groups: dict[int, Group] = {}  # rank -> the group it serves

    def finish(group: Group, replies: list[LoadPointReply]) -> None:
        row = store(list(group.points.values()), replies)
        outcome.points += 1
        failed = any(r.error for r in replies)
        outcome.failed += failed
        group.series.running = False
        if failed:
            group.series.stopped = group.series.plan_next is not None
        else:
            group.series.measured.append(row)
        for rank in group.points:
            del groups[rank]
            if rank not in outcome.lost_ranks:
                free[next(n for n, r in nodes.items() if r == rank)] = rank

    def failed_replies(group: Group) -> list[LoadPointReply]:
        """The point's replies when it failed: each replica's reason (its LoadReady's or LoadPointReply's), or that
        it stopped answering."""
        replies = []
        for rank, point in group.points.items():
            answer = group.answers.get(rank)
            replies.append(LoadPointReply(point.index, hostname=answer.hostname, error=answer.error) if answer else
                           LoadPointReply(point.index, error=f"rank {rank} stopped answering"))
        return replies

    def answered(group: Group) -> None:
        """Every replica answered the present phase: start the point, or end it."""
        if group.running:
            finish(group, [group.answers[rank] for rank in group.points])
        elif any(a.error for a in group.answers.values()):
            finish(group, failed_replies(group))
        else:
            start = wall() + START_LEAD_S if len(group.points) > 1 else 0.0
            group.points = {rank: replace(p, start_unix=start) for rank, p in group.points.items()}
            group.running, group.answers, group.since = True, {}, clock()
            for rank in group.points:
                transport.send_job(rank, group.points[rank])

    while True:
        while len(free) >= replicas:
            pick = next(((s, shape) for s in series if (shape := s.next_shape()) is not None), None)
            if pick is None:
                break
            chosen, shape = pick
            taken = list(free.items())[:replicas]
            made = make_points(chosen.model, chosen.server, shape, [node for node, _ in taken])
            points = {rank: point for (_, rank), point in zip(taken, made)}
            chosen.running = True
            group = Group(chosen, points, clock())
            for node, rank in taken:
                del free[node]
                groups[rank] = group
                transport.send_job(rank, group.job(rank))
            say(f"point {made[0].index}: {chosen.model} {chosen.server.label} under {shape.label} on "
                f"{', '.join(node for node, _ in taken)}")
        if not groups:
            return outcome
        reply = transport.poll()
        if reply is None:
            for group in {id(g): g for g in groups.values()}.values():
                silent = [r for r in group.points if r not in group.answers]
                if silent and clock() - group.since > silence_limit(group.job(silent[0])):
                    outcome.lost_ranks.extend(silent)
                    finish(group, failed_replies(group))
            backoff.sleep()
            continue
        backoff.reset()
        rank, answer = reply
        group = groups[rank]
        group.answers[rank] = answer
        if len(group.answers) == len(group.points):
            answered(group)
