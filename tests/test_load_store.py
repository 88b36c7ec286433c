import math

import h5py
import pytest

from helpers import header
from mpibench.load.metrics import summarise
from mpibench.protocol import (
    FAILED, OK, LoadPoint, LoadPointReply, LoadShape, Phases, RequestRecord, ServerConfig, Workload,
)
from mpibench.store.hdf5 import read_results, write_results
from mpibench.store.schema import LOAD_POINT_COLUMNS, REQUEST_COLUMNS, SCHEMA_VERSION, TIMELINE_COLUMNS, empty_result

S = 1_000_000_000


def point(index, users):
    return LoadPoint(index, ServerConfig(1, 2, 1), LoadShape("closed", users=users),
                     Workload("prompts", prompts=(("pi", "What is pi?"),), max_tokens=4),
                     Phases(duration_s=2.0, drain_s=1.0), "m", "/m", "chat", 128, 1, (0,), 1)


def requests(count):
    """`count` requests half a second apart: the first fails (a NUL in its error), the others give 3 tokens each."""
    out = [RequestRecord(0, 0, 0, "pi", "steady", FAILED, 0, 10, 20, -1, 30, 5, 0, "decode failed \x00")]
    for i in range(1, count):
        start = i * S // 2
        tokens = (start + 100, start + 200, start + 350)
        out.append(RequestRecord(i, i % 2, 0, "pi", "steady", OK, start, start + 1, start + 50, tokens[0],
                                 tokens[-1], 5, 3, "", tokens))
    return out


def test_load_tables_round_trip_through_the_results_file(tmp_path):
    path = tmp_path / "results.h5"
    summaries = [summarise(point(0, 1), LoadPointReply(0, tuple(requests(4)), "h", 1.5e9, 2 * S, 0.01),
                           {"ttft": 0.5}),
                 summarise(point(1, 2), LoadPointReply(1, tuple(requests(5)), "h", 1.6e9, 3 * S, 0.02),
                           {"ttft": 0.5})]
    write_results(path, header(total=2), [], load=summaries)
    results = read_results(path)
    assert results.attrs["schema_version"] == SCHEMA_VERSION == 7 and results.results == []
    assert [p["point"] for p in results.load_points] == [0, 1]
    assert set(results.load_points[0]) == {c for c, _ in LOAD_POINT_COLUMNS}
    for written, read in zip([s.point for s in summaries], results.load_points):
        for column, value in written.items():
            if column == "knee":
                continue
            assert read[column] == value or (math.isnan(value) and math.isnan(read[column])), column
    assert [p["knee"] for p in results.load_points] == [0, 0]  # both invalid (fewer than 300 completions)
    assert len(results.requests) == 9 and set(results.requests[1]) == {c for c, _ in REQUEST_COLUMNS} | {"token_ns"}
    assert results.requests[0]["error"] == "decode failed \ufffd" and results.requests[0]["token_ns"] == ()
    half = S // 2
    assert results.requests[5]["point"] == 1 and results.requests[5]["token_ns"] == (half + 100, half + 200, half + 350)
    assert results.requests[2]["ttft_s"] == pytest.approx(100e-9) and math.isnan(results.requests[0]["ttft_s"])
    assert [t["point"] for t in results.timeline] == [0, 0, 1, 1, 1]
    assert set(results.timeline[0]) == {c for c, _ in TIMELINE_COLUMNS}
    with h5py.File(path) as f:  # plain h5py sees the tables with their definitions
        assert "intended start" in f["requests"].attrs["ttft_s"] and "APDEX" in f["load_points"].attrs["apdex"]
        assert "t0" in f["request_token_ns"].attrs["definition"] and "bin" in f["timeline"].attrs["t_s"]


def test_the_knee_is_marked_over_every_point_of_the_file(tmp_path):
    path = tmp_path / "results.h5"
    starts = [i * S // 200 for i in range(400)]  # 200 a second, each answered in 2 tokens within 2 microseconds
    many = [RequestRecord(i, 0, 0, "pi", "steady", OK, t, t, t, t + 1000, t + 2000, 5, 2, "", (t + 1000, t + 2000))
            for i, t in enumerate(starts)]
    summaries = [summarise(point(0, 1), LoadPointReply(0, tuple(many), "h", 0.0, 2 * S), {}),
                 summarise(point(1, 2), LoadPointReply(1, tuple(many[:300]), "h", 0.0, 2 * S), {})]
    assert [s.point["valid"] for s in summaries] == [1, 1] and [s.point["knee"] for s in summaries] == [0, 0]
    write_results(path, header(), [], load=summaries)
    assert [p["knee"] for p in read_results(path).load_points] == [1, 0]  # 200/s beats 150/s


def test_files_without_load_tables_read_with_none(tmp_path):
    path = tmp_path / "results.h5"
    write_results(path, header(total=1), [empty_result(index=0, task_id="t0", model="m", status="ok", answer="",
                                                       token_ns=[])])
    with h5py.File(path, "a") as f:  # as mpibench wrote it at schema 5, before load runs
        f.attrs["schema_version"] = 5
        assert "load_points" not in f and "requests" not in f
    results = read_results(path)
    assert results.load_points == [] and results.requests == [] and results.timeline == []
    assert len(results.results) == 1


def test_a_load_file_from_before_replicas_reads_as_one_replica(tmp_path):
    path = tmp_path / "results.h5"
    write_results(path, header(total=1), [], load=[summarise(point(0, 1), LoadPointReply(0, tuple(requests(3)), "h",
                                                                                          0.0, 2 * S), {})])
    with h5py.File(path, "a") as f:  # as mpibench wrote it at schema 6: no replicas, no replica
        f.attrs["schema_version"] = 6
        for table, column in (("load_points", "replicas"), ("requests", "replica")):
            data = f[table][()]
            kept = [name for name in data.dtype.names if name != column]
            attrs = dict(f[table].attrs)
            del f[table]
            f.create_dataset(table, data=data[kept].copy())
            f[table].attrs.update({k: v for k, v in attrs.items() if k != column})
    results = read_results(path)
    assert [p["replicas"] for p in results.load_points] == [1]
    assert [r["replica"] for r in results.requests] == [0, 0, 0]
