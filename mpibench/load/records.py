"""A load point as the journal keeps it: one JSON object with the point's replicas and their replies, and the one
point and reply the metrics take from them (pure)."""

from __future__ import annotations

import json
from dataclasses import asdict, replace

from mpibench.protocol import (LoadPoint, LoadPointReply, LoadShape, Phases, RequestRecord, ServerConfig, Workload,
                               fields_of)


def point_record(key: str, points: list[LoadPoint], replies: list[LoadPointReply]) -> dict:
    """The journal's record of a point run on len(points) nodes (`task_id` is its key: a later record of the same
    point replaces it; `error` says why it failed, empty when every replica ran)."""
    return {"task_id": key, "index": points[0].index, "error": merged_error(replies),
            "replicas": [{"point": asdict(point), "reply": dict(fields_of(reply), requests=[asdict(r) for r in
                                                                                              reply.requests])}
                         for point, reply in zip(points, replies)]}


def _tuples(data: dict) -> dict:
    return {k: tuple(tuple(x) if isinstance(x, list) else x for x in v) if isinstance(v, list) else v
            for k, v in data.items()}


def _replica(record: dict) -> tuple[LoadPoint, LoadPointReply]:
    data = dict(record["point"])
    point = LoadPoint(**_tuples(dict(data, server=ServerConfig(**data["server"]), shape=LoadShape(**data["shape"]),
                                     workload=Workload(**_tuples(data["workload"])), phases=Phases(**data["phases"]))))
    reply = dict(record["reply"])
    requests = tuple(RequestRecord(**_tuples(r)) for r in reply.pop("requests"))
    return point, LoadPointReply(**dict(reply, requests=requests))


def from_record(record: dict) -> tuple[LoadPoint, LoadPointReply]:
    """The point and its reply back from a journal record, its replicas merged (merge_replicas); a record written
    before replicas holds one point and reply."""
    replicas = [_replica(r) for r in record["replicas"]] if "replicas" in record else [_replica(record)]
    return merge_replicas([p for p, _ in replicas], [r for _, r in replicas])


def merged_error(replies: list[LoadPointReply]) -> str:
    """Why a replicated point failed: its replicas' reasons, each once."""
    return "; ".join(dict.fromkeys(r.error for r in replies if r.error))


def merge_replicas(points: list[LoadPoint], replies: list[LoadPointReply]) -> tuple[LoadPoint, LoadPointReply]:
    """One point and reply from a point's replicas, in replica order: the requests of all (each marked with its
    replica; its times stay on its own node's clock, from the shared t0), the hosts joined, the generators' CPU
    summed, the latest end and the earliest stop of a replica whose runners all failed (the window ends there). The
    point is replica 0's (its cores and seed)."""
    if len(points) == 1:
        return points[0], replies[0]
    stops = [r.stopped_ns for r in replies if r.stopped_ns >= 0]
    runners = [runner for r in replies for runner in json.loads(r.runners_json or "[]")]
    reply = LoadPointReply(
        index=points[0].index, requests=tuple(replace(q, replica=i) for i, r in enumerate(replies) for q in r.requests),
        hostname=",".join(r.hostname for r in replies), started_unix=min(r.started_unix for r in replies),
        ended_ns=max(r.ended_ns for r in replies), generator_cpu_s=sum(r.generator_cpu_s for r in replies),
        runners_json=json.dumps(runners), error=merged_error(replies), stopped_ns=min(stops) if stops else -1)
    return points[0], reply

