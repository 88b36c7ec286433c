"""`mpibench doctor`: is this launch, and each node's llama.cpp build, fit to measure with? A verdict and
the fix for each problem.

Under `mpirun -n N mpibench doctor` every node is checked by its lowest rank: the launch (world size,
the CPUs the ranks were bound to), the llama.cpp build against the CPU (SIMD, AMX, the compiler and its
AMX tile-config trap), the engine preflight (preflight.py) of the builtin model on one core, and the node's read
bandwidth at each thread count a run would sweep there (probe.py).
"""

from __future__ import annotations

import os
import sys
from dataclasses import asdict, dataclass

from mpibench import launcher, mpi
from mpibench.config import model_from_entry
from mpibench.launcher import LaunchError
from mpibench.metadata import cpu_flags, rank_facts
from mpibench.models import ModelError, inspect_model
from mpibench.placement import describe, placement
from mpibench.preflight import PREFLIGHT_BATCH, PREFLIGHT_SINGLES, crash_advice, summary
from mpibench.probe import node_probe
from mpibench.simd import build_features, host_features, mismatch
from mpibench.toolchain import compiler_affected
from mpibench.protocol import Job, Request
from mpibench.roofline import bandwidth_by_host
from mpibench.tasks import Task
from mpibench.worker import Worker

MODEL = "smollm2-135m"
UNKNOWN_CRASH = ("not a known cause (the GCC AMX trap, instructions the CPU lacks): run the failing model with "
                 "llama.cpp's llama-cli on this node and report its crash")
SETUP_FIX = "bash launch/setup.sh on (or for) this node: it builds llama.cpp with the AMX header fix"


@dataclass(frozen=True)
class Finding:
    level: str  # "ok", "warn" or "fail"
    scope: str  # "launch" or the node's hostname
    text: str
    fix: str = ""


def launch_findings(world_size: int, facts: list[dict], environ) -> list[Finding]:
    """The world the launcher meant against the one MPI made, and the nodes and CPUs the ranks got."""
    try:
        launcher.check_world_size(world_size, environ)
        place = placement(facts)
    except LaunchError as error:
        return [Finding("fail", "launch", str(error))]
    meant = launcher.world_size(environ)
    size = f"the launcher started {meant} ranks and MPI sees {world_size}" if meant else \
        f"{world_size} rank{'s' if world_size > 1 else ''}, no launcher variables (a run without mpirun)"
    return [Finding("ok", "launch", size)] + [Finding("ok", "launch", line) for line in describe(place)]


def build_findings(host: str, flags: set[str], engine: dict) -> list[Finding]:
    """The llama.cpp CPU backend (as a runner reported it) against this node's CPU flags."""
    if not engine.get("engine_library"):
        return [Finding("fail", host, "no runner reported its llama.cpp CPU backend", "run bash launch/setup.sh")]
    library = engine["engine_library"].rsplit("/", 1)[-1]
    variant = f" (portable build, variant {engine['engine_variant']})" if engine.get("engine_variant") else ""
    compiler = engine.get("engine_compiler") or "an unknown compiler"
    fixed = ", with the AMX tile-config fix" if engine.get("engine_fix") else ""
    found = [Finding("ok", host, f"llama.cpp CPU backend {library}{variant}, built by {compiler}{fixed}")]
    cpu, build = host_features(flags), build_features(engine.get("system_info", ""))
    missing = [f for f in build if f not in cpu]
    unused = [f for f in cpu if f not in build and f != "AMX_INT8"]
    if missing:
        found.append(Finding("fail", host, mismatch([], missing), "build on this node, or portably: "
                             "bash launch/build-portable.sh variants (README, running on a cluster)"))
    if unused:
        found.append(Finding("warn", host, mismatch(unused, []) + ": its numbers come out slower than the node",
                             "build on this node: srun -N1 bash launch/build-portable.sh native"))
    if "amx_int8" in flags:
        if "AMX_INT8" not in build:
            found.append(Finding("warn", host, "this CPU has AMX but the build does not use it (AMX ran prompts "
                                 "4.8x faster for Q4_1 on a Xeon)", SETUP_FIX))
        elif compiler_affected(compiler) and not fixed:
            found.append(Finding("fail", host, f"the build's AMX kernels come from {compiler}, whose "
                                 "_tile_loadconfig drops the tile configuration: multi-token decodes crash",
                                 SETUP_FIX))
        else:
            found.append(Finding("ok", host, "AMX: the CPU has it and the build uses it"))
    return found


def preflight_finding(host: str, choice, engine: dict, amx: bool) -> Finding:
    """The preflight's outcome on this node."""
    what = f"preflight of {MODEL} ({PREFLIGHT_BATCH}-token batch, then {PREFLIGHT_SINGLES} single tokens)"
    if choice is None:
        return Finding("fail", host, f"{what}: the model did not load: {engine.get('error', '?')}")
    if choice.settings is None:  # the line names the cause and the fix
        return Finding("fail", host, f"{choice.failure}; a run records such a node's tasks as not run")
    weights = engine.get("engine_weight_buffers") or "-"
    if len(choice.attempts) > 1:
        advice = crash_advice(choice.attempts[-2].signal, engine, amx) or UNKNOWN_CRASH
        return Finding("warn", host, f"{what} passed only after a fallback: {summary(list(choice.attempts))}; "
                       f"weights {weights}; runs use the fallback and record it (engine_fallback)", advice)
    return Finding("ok", host, f"{what}: passed as built, weights {weights}, {engine.get('preflight_s', 0):.2f} s")


def check_node(rank: int, cpus: tuple[int, ...]) -> list[Finding]:
    """The build and preflight findings of this rank's node (a runner pinned to its first CPU)."""
    worker, flags = Worker(rank), cpu_flags()
    try:
        model = inspect_model(model_from_entry(MODEL))
    except ModelError as error:
        return [Finding("fail", worker.hostname, str(error), "bash launch/setup.sh installs the builtin models")]
    task = Task("doctor", 0, MODEL, "preflight", 1, 0)
    job = Job(task, (cpus[0],), model.path, model.prompt_format, Request(), n_ctx=512, seed=42, timeout=600)
    runner, choice = worker.preflight(job)
    engine = choice.engine if choice else runner.facts
    if runner:
        runner.close()
    return build_findings(worker.hostname, flags, engine) + \
        [preflight_finding(worker.hostname, choice, engine, "amx_int8" in flags)]


def bandwidth_findings(facts: dict) -> list[Finding]:
    """The node's read bandwidth on this rank's CPUs (the decode roofline's numerator), or why it could not be
    measured."""
    rows, _, error = node_probe(facts, None)  # every count fits: the default counts are the rank's own
    found = [Finding("ok", host, f"read bandwidth {words}")
             for host, words in bandwidth_by_host([asdict(r) for r in rows]).items()]
    return found + ([Finding("warn", facts["hostname"], f"read bandwidth: {error}",
                             "a run's tasks on this node would get no roofline")] if error else [])


def render(findings: list[Finding]) -> str:
    lines = []
    for f in findings:
        lines.append(f"{f.level:<5} {f.scope}: {f.text}")
        if f.fix:
            lines.append(f"      fix: {f.fix}")
    problems = sum(f.level == "fail" for f in findings)
    warnings = sum(f.level == "warn" for f in findings)
    lines.append(f"verdict: {'fit to measure' if not problems else 'not fit to measure'}: "
                 f"{problems} problem{'s' * (problems != 1)}, {warnings} warning{'s' * (warnings != 1)}")
    return "\n".join(lines)


def doctor() -> int:
    """Every rank: gather facts, node leaders check their node, rank 0 prints; 1 when a check failed."""
    comm = mpi.comm_world()
    facts = dict(rank_facts(), node=mpi.node_leader(comm))
    everyone = mpi.gather(comm, facts)
    mine = check_node(comm.rank, facts["cpus"]) + bandwidth_findings(facts) if facts["node"] == comm.rank else []
    nodes = mpi.gather(comm, mine)
    if comm.rank != 0:
        return 0
    findings = launch_findings(comm.size, everyone, os.environ) + [f for node in nodes for f in node]
    print(f"mpibench doctor: {comm.size} rank{'s' * (comm.size != 1)}, {mpi.library_version()}")
    print(render(findings))
    sys.stdout.flush()
    return 1 if any(f.level == "fail" for f in findings) else 0
