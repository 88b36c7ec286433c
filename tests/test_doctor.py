"""`mpibench doctor`: the verdicts from given facts, and real checks under mpiexec (with injected preflight
crashes, since this machine's engine does not crash by itself)."""

import subprocess

import pytest

from helpers import mpi_env, mpibench
from mpibench.doctor import build_findings, launch_findings, render
from mpibench.metadata import rank_facts
from mpibench.preflight import FAULT_ENV

GCC12 = "GCC: (Debian 12.2.0-14+deb12u1) 12.2.0"
XEON = {"avx", "avx2", "fma", "f16c", "bmi2", "pni", "ssse3", "avx512f", "avx512vbmi", "avx512_vnni",
        "avx512_bf16", "amx_int8", "amx_tile"}
AMX_INFO = ("CPU : SSE3 = 1 | SSSE3 = 1 | AVX = 1 | AVX2 = 1 | F16C = 1 | FMA = 1 | BMI2 = 1 | AVX512 = 1 | "
            "AVX512_VBMI = 1 | AVX512_VNNI = 1 | AVX512_BF16 = 1 | AMX_INT8 = 1 | OPENMP = 1 | REPACK = 1 |")


def engine(**overrides) -> dict:
    return dict({"engine_library": "/v/llama_cpp/lib/libggml-cpu.so", "engine_compiler": GCC12, "engine_fix": "",
                 "engine_variant": "", "system_info": AMX_INFO}, **overrides)


def levels(findings) -> list[str]:
    return [f.level for f in findings]


def test_an_amx_build_by_gcc_12_without_the_fix_fails_with_the_setup_fix():
    findings = build_findings("xeon", XEON, engine())
    assert levels(findings) == ["ok", "fail"]
    assert "drops the tile configuration" in findings[1].text and "launch/setup.sh" in findings[1].fix
    assert "not fit to measure: 1 problem" in render(findings)


def test_the_fixed_build_keeps_amx_and_passes():
    findings = build_findings("xeon", XEON, engine(engine_fix="amx-tilecfg"))
    assert levels(findings) == ["ok", "ok"]
    assert "with the AMX tile-config fix" in findings[0].text and "uses it" in findings[1].text


def test_a_build_without_amx_on_an_amx_cpu_is_a_warning_and_a_build_beyond_the_cpu_a_failure():
    no_amx = engine(system_info=AMX_INFO.replace("AMX_INT8 = 1 | ", ""))
    assert levels(build_findings("xeon", XEON, no_amx)) == ["ok", "warn"]
    old_cpu = XEON - {"avx512f", "avx512vbmi", "avx512_vnni", "avx512_bf16", "amx_int8", "amx_tile"}
    findings = build_findings("old", old_cpu, engine(engine_fix="amx-tilecfg"))
    assert levels(findings) == ["ok", "fail"] and "AVX512" in findings[1].text


def test_a_world_that_is_not_the_one_the_launcher_started_fails():
    facts = [dict(rank_facts(), node=0)]
    (finding,) = launch_findings(1, facts, {"PMI_SIZE": "4"})
    assert finding.level == "fail" and "started 4 ranks" in finding.text
    ok = launch_findings(1, facts, {})
    assert levels(ok) == ["ok", "ok"] and "offers" in ok[1].text


def doctor(ranks: int, fault: str = "") -> subprocess.CompletedProcess:
    env = mpi_env()
    env.pop(FAULT_ENV, None)
    if fault:
        env[FAULT_ENV] = fault
    return mpibench(ranks, "doctor", timeout=300, env=env)


@pytest.mark.integration
def test_doctor_under_mpiexec_checks_the_node_and_passes_here():
    proc = doctor(2)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "the launcher started 2 ranks and MPI sees 2" in proc.stdout
    assert "llama.cpp CPU backend libggml-cpu" in proc.stdout
    assert "passed as built" in proc.stdout and "verdict: fit to measure" in proc.stdout


@pytest.mark.integration
def test_doctor_reports_a_fallback_as_a_warning_and_no_working_engine_as_a_failure():
    fallback = doctor(2, "SIGSEGV:1")
    assert fallback.returncode == 0, fallback.stdout + fallback.stderr
    assert "passed only after a fallback: 1 as built: SIGSEGV (signal 11)" in fallback.stdout
    broken = doctor(2, "SIGILL:3")
    assert broken.returncode == 1
    assert "every engine configuration died in preflight" in broken.stdout
    assert "not fit to measure: 1 problem" in broken.stdout and "Traceback" not in broken.stderr
