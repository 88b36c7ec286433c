"""Rank 0's loop of a load test (load/coordinator.py) with a fake transport, and a point's journal record
(load/records.py): points run once, sweeps plan from their measurements, replicas start together and pool."""

import json

from mpibench.load.config import build_load_config
from mpibench.load.coordinator import START_LEAD_S, Series, coordinate_load
from mpibench.load.metrics import summarise
from mpibench.load.records import from_record, merge_replicas, point_record
from mpibench.protocol import (OK, LoadPoint, LoadPointReply, LoadPrepare, LoadReady, Phases, RequestRecord,
                               ServerConfig)

WALL = 1_700_000_000.0


def a_point(index=0, users=1, replica=0, replicas=1, **shape):
    config = build_load_config(None, {"users": str(users), **shape})
    return LoadPoint(index, ServerConfig(1, 2, 1), config.shapes()[0], config.workload, config.phases, "m",
                     "/m.gguf", "chat", 1024, 42 + replica, (0,), 1, replica=replica, replicas=replicas)


def a_request(n, intended_s, end_s):
    intended, end = round(intended_s * 1e9), round(end_s * 1e9)
    return RequestRecord(n, -1, 0, "pi", "steady", OK, intended, intended, intended, end - 1000, end, 3, 2,
                         token_ns=(end - 1000, end))


def test_a_point_and_its_reply_come_back_from_the_journal_as_they_were():
    reply = LoadPointReply(0, (RequestRecord(0, 0, 0, "pi", "steady", "ok", 5, 6, 7, 8, 9, 3, 2, "", (8, 9)),), "vm")
    record = json.loads(json.dumps(point_record("key", [a_point()], [reply])))
    assert record["error"] == "" and from_record(record) == (a_point(), reply)


def test_a_record_journalled_before_replicas_still_reads():
    from dataclasses import asdict

    reply = LoadPointReply(0, (RequestRecord(0, 0, 0, "pi", "steady", "ok", 5, 6, 7, 8, 9, 3, 2, "", (8, 9)),), "vm")
    old = {"task_id": "key", "index": 0, "point": asdict(a_point()),
           "reply": dict(asdict(reply), requests=[asdict(r) for r in reply.requests])}
    old["point"].pop("replica"), old["point"].pop("replicas"), old["point"].pop("start_unix")
    assert from_record(json.loads(json.dumps(old))) == (a_point(), reply)


def test_replicas_merge_into_one_point_whose_rates_are_their_sums():
    """Two nodes under 2/s each for 10 s: the pooled point offered 4/s and achieved 4/s."""
    points = [a_point(3, rate="2", replica=r, replicas=2) for r in range(2)]
    points = [LoadPoint(**{**p.__dict__, "shape": build_load_config(None, {"rates": "2"}).shapes()[0],
                           "phases": Phases(duration_s=10, drain_s=5)}) for p in points]
    replies = [LoadPointReply(3, tuple(a_request(i, 0.5 * i + 0.1 * r, 0.5 * i + 0.2) for i in range(20)),
                              f"node{r}", WALL + r, 10_300_000_000, 0.01 * (r + 1), json.dumps([{"runner": r}]))
               for r in range(2)]
    point, reply = merge_replicas(points, replies)
    assert point == points[0] and reply.hostname == "node0,node1" and reply.started_unix == WALL
    assert [q.replica for q in reply.requests] == [0] * 20 + [1] * 20
    assert json.loads(reply.runners_json) == [{"runner": 0}, {"runner": 1}] and reply.generator_cpu_s == 0.03
    row = summarise(point, reply, {"ttft": 0.5}).point
    assert row["replicas"] == 2 and row["offered_rps"] == 4.0
    assert row["arrival_rps"] == row["achieved_rps"] == row["completed_rps"] == 4.0
    record = json.loads(json.dumps(point_record("key", points, replies)))
    assert from_record(record) == (point, reply)


class Transport:
    """Answers each job at once (or never, for `silent` ranks): LoadReady to LoadPrepare (with `unready` ranks'
    reason), a LoadPointReply to a LoadPoint."""

    def __init__(self, silent=(), unready=()):
        self.sent, self.inbox, self.silent, self.unready = [], [], silent, unready

    def send_job(self, rank, job):
        self.sent.append((rank, job))
        if rank in self.silent:
            return
        if isinstance(job, LoadPrepare):
            self.inbox.append((rank, LoadReady(job.point.index, f"node{rank}",
                                               "cannot load" if rank in self.unready else "")))
        else:
            self.inbox.append((rank, LoadPointReply(job.index, hostname=f"node{rank}")))

    def poll(self):
        return self.inbox.pop(0) if self.inbox else None

    def points(self):
        return [(rank, job) for rank, job in self.sent if isinstance(job, LoadPoint)]


def run(series, nodes, transport, silence=100.0, replicas=1):
    stored, clock, indices = [], iter(range(0, 10**6, 10)), iter(range(10**6))

    def make_points(model, server, shape, nodes):
        index = next(indices)
        return [a_point(index, shape.users, replica, replicas) for replica in range(len(nodes))]

    def store(points, replies):
        stored.append(([p.index for p in points], [r.error for r in replies]))
        return {"point": points[0].index, "users": points[0].shape.users}

    outcome = coordinate_load(series, nodes, replicas, make_points, transport, store, lambda line: None,
                              lambda job: silence, clock=lambda: next(clock), wall=lambda: WALL,
                              sleep=lambda s: None)
    return outcome, stored


def test_every_given_point_runs_once_prepared_first_and_series_share_the_nodes():
    shapes = build_load_config(None, {"users": "1,2,3"}).shapes()
    series = [Series("a", ServerConfig(1, 1, 1), list(shapes)), Series("b", ServerConfig(1, 2, 1), list(shapes))]
    outcome, stored = run(series, {"n1": 1, "n2": 2}, transport := Transport())
    assert outcome.points == 6 and not outcome.failed
    assert sorted(i for (i,), _ in stored) == list(range(6))
    assert {rank for rank, _ in transport.sent} == {1, 2}
    for rank in (1, 2):  # each point is prepared, then started at once (start_unix 0: one replica)
        jobs = [job for r, job in transport.sent if r == rank]
        assert [type(j) for j in jobs] == [LoadPrepare, LoadPoint] * (len(jobs) // 2)
        assert all(j.start_unix == 0.0 for j in jobs if isinstance(j, LoadPoint))


def test_a_replicated_point_runs_on_every_replica_from_one_start_and_stores_once():
    shapes = build_load_config(None, {"users": "1,2"}).shapes()
    outcome, stored = run([Series("a", ServerConfig(), list(shapes))], {"n1": 1, "n2": 2, "n3": 3}, transport := Transport(),
                          replicas=2)
    assert outcome.points == 2 and stored == [([0, 0], ["", ""]), ([1, 1], ["", ""])]
    points = transport.points()
    # the series' second point waits for the first (node n3 stays idle meanwhile), then takes n3 and a freed node
    assert [(rank, p.index, p.replica, p.seed) for rank, p in points] == [(1, 0, 0, 42), (2, 0, 1, 43),
                                                                          (3, 1, 0, 42), (1, 1, 1, 43)]
    assert {p.start_unix for _, p in points} == {WALL + START_LEAD_S}


def test_a_replica_that_cannot_start_fails_the_point_before_any_replica_runs():
    shapes = build_load_config(None, {"users": "1"}).shapes()
    outcome, stored = run([Series("a", ServerConfig(), list(shapes))], {"n1": 1, "n2": 2}, transport := Transport(
        unready=(2,)), replicas=2)
    assert outcome.failed == 1 and stored == [([0, 0], ["", "cannot load"])]
    assert not transport.points()


def test_a_sweep_plans_each_point_from_the_ones_before_and_stops_when_its_planner_does():
    seen = []

    def plan_next(measured):
        seen.append([row["users"] for row in measured])
        return build_load_config(None, {"users": str(len(measured) + 1)}).shapes()[0] if len(measured) < 3 else None

    outcome, _ = run([Series("a", ServerConfig(), [], plan_next)], {"n1": 1}, Transport())
    assert outcome.points == 3 and seen[-1] == [1, 2, 3]


def test_a_silent_node_is_lost_its_point_failed_and_the_others_go_on():
    shapes = build_load_config(None, {"users": "1,2"}).shapes()
    outcome, stored = run([Series("a", ServerConfig(), list(shapes))], {"n1": 1, "n2": 2}, Transport(silent=(1,)),
                          silence=50.0)
    assert outcome.lost_ranks == [1] and outcome.failed == 1
    assert sorted(errors for _, errors in stored) == [[""], ["rank 1 stopped answering"]]


def test_a_silent_replica_fails_its_point_and_frees_the_other_node_only():
    shapes = build_load_config(None, {"users": "1,2"}).shapes()
    outcome, stored = run([Series("a", ServerConfig(), list(shapes))], {"n1": 1, "n2": 2}, Transport(silent=(2,)),
                          silence=50.0, replicas=2)
    assert outcome.lost_ranks == [2] and outcome.failed == 1
    assert stored == [([0, 0], ["", "rank 2 stopped answering"])]  # then one node is left: too few for 2 replicas
