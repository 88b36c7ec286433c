"""The load test's configuration: flags and TOML into a LoadConfig, every bad value refused with one line."""

import json

import pytest

from mpibench.config import ConfigError
from mpibench.load.config import build_load_config, load_config_from_json, parse_server
from mpibench.protocol import ServerConfig


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


def test_replicas_take_a_count_or_all_and_the_default_leaves_the_hash_as_before():
    assert build_load_config(None, {"replicas": "3"}).replicas == 3
    assert build_load_config("replicas = 'all'").replicas == 0
    default, replicated = build_load_config(), build_load_config(None, {"replicas": "2"})
    assert "replicas" not in default.canonical_json() and '"replicas": 2' in replicated.canonical_json()
    assert default.hash() != replicated.hash()
    assert load_config_from_json(replicated.canonical_json()) == replicated
    assert load_config_from_json(default.canonical_json()) == default


@pytest.mark.parametrize("overrides, message", [
    ({"servers": "1x0x1"}, "positive counts"), ({"servers": "4"}, "P x S x T"), ({"rates": "fast"}, "positive"),
    ({"rates": "-1"}, "positive"), ({"users": "0"}, "positive"), ({"sweep": True, "users": "2"}, "--sweep plans"),
    ({"max_tokens": 2000}, "raise --ctx"), ({"arrivals": "bursty"}, "arrivals must be one of"),
    ({"duration": 0}, "duration must be a number above 0"), ({"gamma_shape": -1.0}, "gamma_shape"),
    ({"replicas": "0"}, "replicas must be a count"), ({"replicas": "some"}, "replicas must be a count"),
])
def test_bad_values_are_refused_with_what_to_do(overrides, message):
    with pytest.raises(ConfigError, match=message):
        build_load_config(None, overrides)


def test_unknown_toml_keys_are_named_with_the_closest_one():
    with pytest.raises(ConfigError, match="Did you mean 'users'"):
        build_load_config("user = [1]")


def test_server_labels_parse_with_or_without_letters():
    assert parse_server("2x4x8") == parse_server("P2xS4xT8") == ServerConfig(2, 4, 8)
