"""The load test's configuration: flags and TOML into a LoadConfig, every bad value refused with one line."""

import json

import pytest

from mpibench.config import ConfigError
from mpibench.load.config import build_load_config, load_config_from_json, parse_server
from mpibench.load.coordinator import Series, coordinate_load
from mpibench.load.records import from_record, point_record
from mpibench.protocol import LoadPoint, LoadPointReply, RequestRecord, ServerConfig


def test_flags_make_the_points_and_the_servers():
    config = build_load_config(None, {"users": "1,2", "rates": "0.5,4", "servers": "1x4x1,P2xS1xT1", "arrivals": "gamma"})
    assert [s.label for s in config.shapes()] == ["1 user", "2 users", "0.5/s gamma", "4/s gamma"]
    assert [s.label for s in config.servers] == ["P1xS4xT1", "P2xS1xT1"]
    assert not config.sweep and config.workload.kind == "prompts"


def test_no_load_given_is_a_sweep_and_fixed_tokens_make_the_fixed_workload():
    assert build_load_config().sweep
    workload = build_load_config("prompt_tokens = 32\nmax_tokens = 8\nusers = [2]").workload
    assert (workload.kind, workload.prompt_tokens, workload.gen_tokens) == ("fixed", 32, 8)


def test_the_configuration_round_trips_through_its_json_and_the_hash_ignores_the_output():
    config = build_load_config(None, {"users": "3", "servers": "2x2x1", "out": "here"})
    assert load_config_from_json(config.canonical_json()) == config
    assert build_load_config(None, {"users": "3", "servers": "2x2x1", "out": "there"}).hash() == config.hash()


@pytest.mark.parametrize("overrides, message", [
    ({"servers": "1x0x1"}, "positive counts"), ({"servers": "4"}, "P x S x T"), ({"rates": "fast"}, "positive"),
    ({"rates": "-1"}, "positive"), ({"users": "0"}, "positive"), ({"sweep": True, "users": "2"}, "--sweep plans"),
    ({"max_tokens": 2000}, "raise --ctx"), ({"arrivals": "bursty"}, "arrivals must be one of"),
    ({"duration": 0}, "duration must be a number above 0"), ({"gamma_shape": -1.0}, "gamma_shape"),
])
def test_bad_values_are_refused_with_what_to_do(overrides, message):
    with pytest.raises(ConfigError, match=message):
        build_load_config(None, overrides)


def test_unknown_toml_keys_are_named_with_the_closest_one():
    with pytest.raises(ConfigError, match="Did you mean 'users'"):
        build_load_config("user = [1]")


def test_server_labels_parse_with_or_without_letters():
    assert parse_server("2x4x8") == parse_server("P2xS4xT8") == ServerConfig(2, 4, 8)


def a_point(index=0, users=1):
    config = build_load_config(None, {"users": str(users)})
    return LoadPoint(index, ServerConfig(1, 2, 1), config.shapes()[0], config.workload, config.phases, "m",
                     "/m.gguf", "chat", 1024, 42, (0,), 1)


def test_a_point_and_its_reply_come_back_from_the_journal_as_they_were():
    reply = LoadPointReply(0, (RequestRecord(0, 0, 0, "pi", "steady", "ok", 5, 6, 7, 8, 9, 3, 2, "", (8, 9)),), "vm")
    record = json.loads(json.dumps(point_record("key", a_point(), reply)))
    assert from_record(record) == (a_point(), reply)


class Transport:
    """Answers each point at once (or never, for `silent` ranks)."""

    def __init__(self, silent=()):
        self.sent, self.inbox, self.silent = [], [], silent

    def send_job(self, rank, point):
        self.sent.append((rank, point))
        if rank not in self.silent:
            self.inbox.append((rank, LoadPointReply(point.index, hostname=f"node{rank}")))

    def poll(self):
        return self.inbox.pop(0) if self.inbox else None


def run(series, nodes, transport, silence=100.0):
    stored, clock = [], iter(range(0, 10**6, 10))

    def make_point(model, server, shape, node):
        return a_point(len(transport.sent), shape.users)

    def store(point, reply):
        stored.append((point.index, reply.error))
        return {"point": point.index, "users": point.shape.users}

    outcome = coordinate_load(series, nodes, make_point, transport, store, lambda line: None, lambda p: silence,
                              clock=lambda: next(clock), sleep=lambda s: None)
    return outcome, stored


def test_every_given_point_runs_once_and_series_share_the_nodes():
    shapes = build_load_config(None, {"users": "1,2,3"}).shapes()
    series = [Series("a", ServerConfig(1, 1, 1), list(shapes)), Series("b", ServerConfig(1, 2, 1), list(shapes))]
    outcome, stored = run(series, {"n1": 1, "n2": 2}, transport := Transport())
    assert outcome.points == 6 and not outcome.failed
    assert sorted(i for i, _ in stored) == list(range(6))
    assert {rank for rank, _ in transport.sent} == {1, 2}


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
    assert sorted(error for _, error in stored) == ["", "rank 1 stopped answering"]
