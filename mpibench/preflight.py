"""Engine preflight (pure): the engine configurations a runner tries, in fallback order, and the advice
when one dies.

llama.cpp picks its kernels per host (AMX tiles, CPU_REPACK, the plain CPU kernels; a portable build one
CPU variant), so a build that runs on one node can crash on another. Before a worker's first measured task
of a model, its first runner loads the model and decodes a PREFLIGHT_BATCH-token batch, then
PREFLIGHT_SINGLES single tokens (runner.py). A runner that dies there by a fatal signal is started again
with the next configuration of `fallback_plan`:

1. as built: the best CPU variant of the build, extra buffer types on (AMX, CPU_REPACK);
2. only for a portable build with an AMX variant, on a CPU with AMX: the best variant without AMX;
3. extra buffer types off: no AMX and no weight repacking, the plain CPU kernels.

What ran, and every attempt with its signal, is recorded on each of the model's tasks.
"""

from __future__ import annotations

import signal
from dataclasses import dataclass

from mpibench.toolchain import compiler_affected

PREFLIGHT_BATCH, PREFLIGHT_SINGLES = 32, 4
FATAL_SIGNALS = (signal.SIGSEGV, signal.SIGILL, signal.SIGBUS, signal.SIGFPE, signal.SIGABRT)
AMX_VARIANTS = ("sapphirerapids",)  # ggml's CPU variants built with AMX_INT8 (ggml/src/CMakeLists.txt)
FAULT_ENV = "MPIBENCH_PREFLIGHT_FAULT"  # fault injection for tests: "SIGSEGV:2" kills attempts 1 and 2 so


@dataclass(frozen=True)
class EngineSettings:
    """How a runner sets llama.cpp up: which CPU variant of a portable build, and extra buffer types."""

    avoid_amx: bool = False  # load the best CPU variant without AMX (portable builds only)
    extra_bufts: bool = True  # llama_model_params.use_extra_bufts: AMX and CPU_REPACK weight buffers

    def describe(self) -> str:
        changes = (["best variant without AMX"] if self.avoid_amx else []) + \
            ([] if self.extra_bufts else ["extra buffer types off"])
        return ", ".join(changes) or "as built"


@dataclass(frozen=True)
class Attempt:
    settings: EngineSettings
    signal: int  # the fatal signal it died by; 0: it passed

    def describe(self) -> str:
        return f"{self.settings.describe()}: " + (signal_name(self.signal) if self.signal else "ok")


def fallback_plan(variants: list[str], cpu_has_amx: bool) -> list[EngineSettings]:
    """The configurations to try in order, for a build with these CPU variants ([] for a plain build)."""
    plan = [EngineSettings()]
    if cpu_has_amx and any(v in AMX_VARIANTS for v in variants):
        plan.append(EngineSettings(avoid_amx=True))
    plan.append(EngineSettings(avoid_amx=bool(variants), extra_bufts=False))
    return plan


def signal_name(signum: int) -> str:
    try:
        return f"{signal.Signals(signum).name} (signal {signum})"
    except ValueError:
        return f"signal {signum}"


def summary(attempts: list[Attempt]) -> str:
    """The attempts in one line, as recorded: "1 as built: SIGSEGV (signal 11); 2 extra buffer types off: ok"."""
    return "; ".join(f"{i} {a.describe()}" for i, a in enumerate(attempts, 1))


def injected_fault(environ: dict, attempt: int) -> int:
    """The signal a test asked this preflight attempt (counted from 1) to die by, from FAULT_ENV; 0: none."""
    name, _, count = environ.get(FAULT_ENV, "").partition(":")
    if not name:
        return 0
    try:
        return int(signal.Signals[name]) if attempt <= int(count or 1) else 0
    except (KeyError, ValueError):
        raise ValueError(f"{FAULT_ENV}={environ[FAULT_ENV]!r}: expected a signal name and a count, "
                         f"e.g. SIGSEGV:1") from None


def crash_advice(signum: int, engine: dict, cpu_has_amx: bool) -> str:
    """Cause and fix of a runner's death by `signum`, from what it reported of its engine before dying
    (keys engine_compiler, engine_fix, engine_variant, system_info; any may be missing); "" when the cause
    is not one of the known ones."""
    compiler, fixed = engine.get("engine_compiler", ""), bool(engine.get("engine_fix"))
    amx_code = "AMX_INT8 = 1" in engine.get("system_info", "") or engine.get("engine_variant") in AMX_VARIANTS
    if cpu_has_amx and amx_code and compiler_affected(compiler) and not fixed:
        return (f"llama.cpp's AMX kernels were built by {compiler}, whose _tile_loadconfig drops the tile "
                "configuration; rebuild with `bash launch/setup.sh` (it applies the header fix and keeps AMX; "
                "README, CPU notes)")
    if signum == signal.SIGILL:
        return ("the llama.cpp build uses instructions this CPU lacks: build it on this node or portably "
                "(launch/build-portable.sh)")
    return ""
