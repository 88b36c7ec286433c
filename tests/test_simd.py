"""SIMD features of the llama.cpp build against the host CPU's, and where the results file keeps them."""

import json

from helpers import HOST, header
from mpibench.simd import annotate_hosts, build_features, host_features, mismatch
from mpibench.store.hdf5 import read_results, write_results
from mpibench.store.schema import empty_result

AVX2_BUILD = ("CPU : SSE3 = 1 | SSSE3 = 1 | AVX = 1 | AVX2 = 1 | F16C = 1 | FMA = 1 | BMI2 = 1 | AVX512 = 0 | "
              "LLAMAFILE = 1 | OPENMP = 1 | REPACK = 1 |")
SKYLAKE_FLAGS = {"fpu", "pni", "ssse3", "avx", "avx2", "f16c", "fma", "bmi2", "avx512f", "avx512_vnni"}


def test_features_from_system_info_and_cpu_flags():
    assert build_features(AVX2_BUILD) == ["SSE3", "SSSE3", "AVX", "AVX2", "F16C", "FMA", "BMI2"]
    assert host_features(SKYLAKE_FLAGS) == ["SSE3", "SSSE3", "AVX", "AVX2", "F16C", "FMA", "BMI2", "AVX512",
                                            "AVX512_VNNI"]
    assert host_features({"fp", "asimd", "asimddp", "i8mm", "sve"}) == ["NEON", "ARM_FMA", "DOTPROD",
                                                                          "MATMUL_INT8", "SVE"]


def test_a_mismatch_says_which_side_lacks_what():
    host = host_features(SKYLAKE_FLAGS)
    assert mismatch(host, build_features(AVX2_BUILD)) == "the build leaves AVX512,AVX512_VNNI of this CPU unused"
    assert mismatch(["SSE3", "AVX"], ["SSE3", "AVX", "AVX2"]) == "the build uses AVX2 that this CPU lacks"
    assert mismatch(host, host) == ""


def simd_header():
    hosts = [dict(HOST, hostname=h, governor="performance", simd=simd)
             for h, simd in (("old", "SSE3,SSSE3,AVX,AVX2,F16C,FMA,BMI2"),
                             ("new", ",".join(host_features(SKYLAKE_FLAGS))), ("idle", "SSE3"))]
    return header(run_id="r", world_size=4, hosts=hosts, workers=[], models=[], prompts=[],
                  launch={"SLURM_JOB_ID": "42"})


def test_each_host_keeps_the_build_its_tasks_ran_with(tmp_path):
    records = [empty_result(index=i, task_id=f"t{i}", hostname=host, status="ok", answer="a", token_ns=[1],
                            system_info=AVX2_BUILD) for i, host in enumerate(("old", "new"))]
    records.append(empty_result(index=2, task_id="t2", hostname="new", status="failed", answer="", token_ns=[]))
    rows = {h["hostname"]: h for h in annotate_hosts(simd_header()["hosts"], records)}
    assert rows["old"]["llama_system_info"] == AVX2_BUILD and rows["old"]["simd_mismatch"] == ""
    assert rows["new"]["simd_mismatch"] == "the build leaves AVX512,AVX512_VNNI of this CPU unused"
    assert rows["idle"]["llama_system_info"] == "" and rows["idle"]["simd_mismatch"] == ""

    write_results(tmp_path / "results.h5", simd_header(), records)
    results = read_results(tmp_path / "results.h5")
    assert results.attrs["schema_version"] == 5
    assert json.loads(results.attrs["launch_json"]) == {"SLURM_JOB_ID": "42"}
    assert {h["hostname"]: h["simd_mismatch"] for h in results.hosts} == {h: r["simd_mismatch"] for h, r in rows.items()}
    assert results.hosts[1]["simd"] == "SSE3,SSSE3,AVX,AVX2,F16C,FMA,BMI2,AVX512,AVX512_VNNI"
