"""Engine preflight: the fallback order, the advice, and real runs under mpiexec where the preflight child is
made to die by SIGSEGV or SIGILL (fault injection: this machine's engine does not crash by itself)."""

import hashlib
import signal
import subprocess
from pathlib import Path

import pytest

from helpers import header, mpi_env, mpibench
from mpibench import preflight
from mpibench.preflight import Attempt, EngineSettings
from mpibench.store.hdf5 import read_results
from mpibench.store.schema import empty_result
from mpibench.summary import cells, engine_lines, report

AS_BUILT, NO_AMX, EXTRA_OFF = EngineSettings(), EngineSettings(avoid_amx=True), EngineSettings(extra_bufts=False)
GCC12 = "GCC: (Debian 12.2.0-14+deb12u1) 12.2.0"


def test_a_plain_build_falls_back_to_extra_buffer_types_off():
    assert preflight.fallback_plan([], cpu_has_amx=True) == [AS_BUILT, EXTRA_OFF]
    assert preflight.fallback_plan([], cpu_has_amx=False) == [AS_BUILT, EXTRA_OFF]


def test_a_portable_build_on_an_amx_cpu_tries_the_best_variant_without_amx_first():
    variants = ["haswell", "sapphirerapids", "zen4"]
    assert preflight.fallback_plan(variants, cpu_has_amx=True) == [
        AS_BUILT, NO_AMX, EngineSettings(avoid_amx=True, extra_bufts=False)]
    assert preflight.fallback_plan(variants, cpu_has_amx=False) == [
        AS_BUILT, EngineSettings(avoid_amx=True, extra_bufts=False)]


def test_attempts_read_as_one_line():
    attempts = [Attempt(AS_BUILT, signal.SIGSEGV), Attempt(EXTRA_OFF, 0)]
    assert preflight.summary(attempts) == "1 as built: SIGSEGV (signal 11); 2 extra buffer types off: ok"


def test_fault_injection_names_a_signal_and_how_many_attempts_die():
    env = {preflight.FAULT_ENV: "SIGILL:2"}
    assert [preflight.injected_fault(env, n) for n in (1, 2, 3)] == [signal.SIGILL, signal.SIGILL, 0]
    assert preflight.injected_fault({preflight.FAULT_ENV: "SIGSEGV"}, 1) == signal.SIGSEGV
    assert preflight.injected_fault({}, 1) == 0
    with pytest.raises(ValueError, match="SIGSEGV:1"):
        preflight.injected_fault({preflight.FAULT_ENV: "SEGV:x"}, 1)


def test_the_advice_names_the_gcc_amx_trap_only_where_it_applies():
    amx_build = {"engine_compiler": GCC12, "system_info": "CPU : AVX512 = 1 | AMX_INT8 = 1 |"}
    assert "launch/setup.sh" in preflight.crash_advice(signal.SIGSEGV, amx_build, cpu_has_amx=True)
    assert "launch/setup.sh" in preflight.crash_advice(signal.SIGILL, {"engine_compiler": GCC12,
                                                                         "engine_variant": "sapphirerapids"}, True)
    fixed = dict(amx_build, engine_fix="amx-tilecfg")
    assert "launch/setup.sh" not in preflight.crash_advice(signal.SIGSEGV, fixed, cpu_has_amx=True)
    assert "instructions this CPU lacks" in preflight.crash_advice(signal.SIGILL, {}, cpu_has_amx=False)
    assert preflight.crash_advice(signal.SIGSEGV, {}, cpu_has_amx=False) == ""  # no known cause


def _row(engine_sha: str, weights: str, e2e: float, repetition: int, host: str = "a") -> dict:
    return empty_result(**{"kind": "bench", "model": "m", "prompt_id": "tg8", "threads": 1, "repetition": repetition,
            "warmup": 0, "status": "ok", "hostname": host, "e2e_s": e2e, "decode_tok_s": 8 / e2e,
            "ttft_s": float("nan"), "prefill_tok_s": float("nan"), "tpot_s": float("nan"), "generated_tokens": 8,
            "engine_library": "/lib/libggml-cpu.so", "engine_library_sha256": engine_sha, "engine_variant": "",
            "engine_extra_bufts": int(weights != "CPU_Mapped"), "engine_weight_buffers": weights,
            "engine_compiler": GCC12, "engine_fix": "", "preflight": "1 as built: ok", "engine_fallback": 0})


def test_cells_of_different_engine_configurations_are_kept_apart_and_said_so():
    amx = [_row("aa" * 32, "AMX,CPU_Mapped", 0.1, i, host="new") for i in range(3)]
    plain = [dict(_row("bb" * 32, "CPU_Mapped", 0.2, i, host="old"), engine_fallback=1,
                  preflight="1 as built: SIGSEGV (signal 11); 2 extra buffer types off: ok") for i in range(3, 6)]
    apart = cells(amx + plain)
    assert len(apart) == 2 and all(c.apart and c.stats["e2e_s"].n == 3 for c in apart)
    assert {c.medians["e2e_s"] for c in apart} == {0.1, 0.2}
    assert "weights AMX,CPU_Mapped" in apart[0].series and "extra buffers off" in apart[1].series
    text = report(apart)
    assert "m ran with several engine configurations" in text
    lines = engine_lines(amx + plain)
    assert any("engine on new for m" in line and GCC12 in line for line in lines)
    assert any("warning: m on old ran after a preflight fallback" in line for line in lines)
    (pooled,) = cells(amx)  # one configuration: one cell, named by its model alone
    assert not pooled.apart and pooled.series == "m" and "aaaaaaaa" in pooled.engine


def bench(tmp_path: Path, fault: str, ranks: int = 2) -> tuple[subprocess.CompletedProcess, Path]:
    out = tmp_path / "run"
    env = mpi_env()
    env.pop(preflight.FAULT_ENV, None)
    if fault:
        env[preflight.FAULT_ENV] = fault
    return mpibench(ranks, "bench", "-m", "smollm2-135m", "-p", "16", "-n", "4", "-r", "1", "-t", "1", "--warmup", "0",
                    "--no-plots", "--out", str(out), timeout=300, env=env), out


@pytest.mark.integration
def test_the_engine_that_ran_is_recorded_on_every_task(tmp_path):
    proc, out = bench(tmp_path, "")
    assert proc.returncode == 0, proc.stderr
    rows = read_results(out / "results.h5").results
    assert len(rows) == 2
    for row in rows:
        library = Path(row["engine_library"])
        assert row["status"] == "ok" and library.name.startswith("libggml-cpu")
        assert row["engine_library_sha256"] == hashlib.sha256(library.read_bytes()).hexdigest()
        assert row["engine_compiler"].startswith(("GCC:", "clang", "Ubuntu clang"))
        assert "CPU" in row["engine_weight_buffers"] and row["engine_extra_bufts"] == 1
        assert row["preflight"] == "1 as built: ok" and row["engine_fallback"] == 0
        assert "AVX" in row["system_info"] or "NEON" in row["system_info"]
    assert [r["preflight_s"] > 0 for r in rows].count(True) == 2  # both tasks ran in the runner that preflighted


@pytest.mark.integration
def test_a_preflight_that_dies_by_sigsegv_falls_back_and_says_so(tmp_path):
    proc, out = bench(tmp_path, "SIGSEGV:1")
    assert proc.returncode == 0, proc.stderr
    assert "preflight (as built) died by SIGSEGV (signal 11)" in proc.stderr
    assert "retrying with extra buffer types off" in proc.stderr
    rows = read_results(out / "results.h5").results
    assert [r["status"] for r in rows] == ["ok", "ok"]
    for row in rows:
        assert row["preflight"] == "1 as built: SIGSEGV (signal 11); 2 extra buffer types off: ok"
        assert row["engine_fallback"] == 1 and row["engine_extra_bufts"] == 0
    show = mpibench(None, "show", str(out / "results.h5"), timeout=60)
    assert show.returncode == 0 and "ran after a preflight fallback" in show.stdout


@pytest.mark.integration
def test_when_every_configuration_dies_by_sigill_the_tasks_are_not_run_with_one_clear_line(tmp_path):
    proc, out = bench(tmp_path, "SIGILL:9")
    assert proc.returncode == 1
    failures = [line for line in proc.stderr.splitlines() if "error:" in line and "cannot run on" in line]
    assert len(failures) == 1, proc.stderr
    assert "mpibench:   2 tasks not_run: smollm2-135m cannot run on" in proc.stderr  # the run's end counts it
    assert "every engine configuration died in preflight" in failures[0]
    assert "1 as built: SIGILL (signal 4); 2 extra buffer types off: SIGILL (signal 4)" in failures[0]
    assert "instructions this CPU lacks" in failures[0]
    assert "Traceback" not in proc.stderr
    results = read_results(out / "results.h5")
    assert [r["status"] for r in results.results] == ["not_run", "not_run"]
    assert all("cannot run on" in r["error"] for r in results.results)
    assert results.attrs["status"] == "complete"


def test_engine_columns_round_trip_and_plots_draw_each_configuration_apart(tmp_path):
    from analysis.plots import draw_all
    from mpibench.store.hdf5 import write_results

    rows = [empty_result(**dict(_row(sha, weights, e2e, rep), index=i, task_id=f"t{i}", kind="query",
                                prompt_id="pi", threads=threads, answer="3.14", token_ns=[1, 2]))
            for i, (sha, weights, e2e, rep, threads) in enumerate(
                [("aa" * 32, "AMX", 0.2, 0, 1), ("aa" * 32, "AMX", 0.1, 0, 2),
                 ("bb" * 32, "CPU_Mapped", 0.4, 1, 1), ("bb" * 32, "CPU_Mapped", 0.3, 1, 2)])]
    write_results(tmp_path / "results.h5", header(total=4), rows)
    back = read_results(tmp_path / "results.h5").results
    assert [r["engine_weight_buffers"] for r in back] == ["AMX", "AMX", "CPU_Mapped", "CPU_Mapped"]
    assert back[0]["engine_compiler"] == GCC12 and back[2]["engine_library_sha256"] == "bb" * 32
    assert len({c.series for c in cells(back)}) == 2
    assert len(draw_all(tmp_path / "results.h5", tmp_path / "plots")) == 4
