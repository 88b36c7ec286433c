"""The names of a load point (a row of the load_points table) that exports, plots and the report show (pure)."""

from __future__ import annotations

from mpibench.protocol import LoadShape, ServerConfig


def configuration(point: dict, with_model: bool = False) -> str:
    """Its server configuration, "P1xS4xT2" (" kv-unified" when its runners share one KV buffer); with
    `with_model`, the model first (for runs of several models)."""
    server = ServerConfig(partitions=point["partitions"], slots=point["slots"], threads=point["threads"]).label
    return (f"{point['model']} " if with_model else "") + server + (" kv-unified" if point["kv_unified"] else "")


def load(point: dict) -> str:
    """Its load: "8 users", "8 users, think exponential 2 s", "2/s poisson", "2/s poisson cap 16" (", on each of
    2 nodes" when replicated)."""
    shape = LoadShape(mode=point["mode"], users=point["users"], think=point["think"], think_s=point["think_s"],
                      rate=point["rate"], arrivals=point["arrivals"], max_concurrency=point["max_concurrency"])
    return replicated(shape, point["replicas"])


def replicated(shape: LoadShape, replicas: int) -> str:
    """A load's label, saying the nodes it ran on at once when more than one."""
    return shape.label + (f", on each of {replicas} nodes" if replicas > 1 else "")


def several_models(points: list[dict]) -> bool:
    """Whether the points ran more than one model (then their names say which)."""
    return len({p["model"] for p in points}) > 1


def label(point: dict, with_model: bool = False) -> str:
    """Configuration and load: "P1xS4xT2 8 users"."""
    return f"{configuration(point, with_model)} {load(point)}"
