"""A load point as the journal keeps it: one JSON object with the point and its reply (pure)."""

from __future__ import annotations

from dataclasses import asdict

from mpibench.protocol import (LoadPoint, LoadPointReply, LoadShape, Phases, RequestRecord, ServerConfig, Workload,
                               fields_of)


def point_record(key: str, point: LoadPoint, reply: LoadPointReply) -> dict:
    """The journal's record of a point (`task_id` is its key: a later record of the same point replaces it)."""
    return {"task_id": key, "index": point.index, "point": asdict(point),
            "reply": dict(fields_of(reply), requests=[asdict(r) for r in reply.requests])}


def _tuples(data: dict) -> dict:
    return {k: tuple(tuple(x) if isinstance(x, list) else x for x in v) if isinstance(v, list) else v
            for k, v in data.items()}


def from_record(record: dict) -> tuple[LoadPoint, LoadPointReply]:
    """The point and its reply back from a journal record."""
    data = dict(record["point"])
    point = LoadPoint(**_tuples(dict(data, server=ServerConfig(**data["server"]), shape=LoadShape(**data["shape"]),
                                     workload=Workload(**_tuples(data["workload"])), phases=Phases(**data["phases"]))))
    reply = dict(record["reply"])
    requests = tuple(RequestRecord(**_tuples(r)) for r in reply.pop("requests"))
    return point, LoadPointReply(**dict(reply, requests=requests))
