"""Runner child process: pins itself, loads one model once, then runs the tasks its worker sends.

Started by worker.py as `python -m mpibench.runner` with the OpenMP environment already set. Protocol
(protocol.py's messages, one JSON line each): stdin: a LoadRequest (with the engine settings, and the
preflight attempt or 0), then one Request a task (a prompt, or a llama-bench test). stdout (kept private:
llama.cpp's own prints go to stderr): EngineFacts (the CPU backend about to run, so that a crash can be
explained), then Loaded once the model loaded and passed its preflight, or Failed; then one Measurement
or Failed a task.
"""

from __future__ import annotations

import hashlib
import os
import resource
import sys
import time
import traceback
from pathlib import Path

from mpibench.affinity import format_cpu_list
from mpibench.contention import assess, read_core_times
from mpibench.preflight import PREFLIGHT_BATCH, PREFLIGHT_SINGLES, injected_fault
from mpibench.protocol import (EngineFacts, Failed, Loaded, LoadRequest, Measurement, Request, decode, encode,
                               fields_of)
from mpibench.toolchain import AMX_FIX_MARKER, has_amx_fix, library_comments


def library_facts(library: Path) -> dict:
    """The CPU backend library a runner uses: path, sha256, the compiler that built it (its ELF .comment)
    and whether it carries the AMX tile-config fix of launch/setup.sh."""
    digest = hashlib.sha256()
    with library.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    comments = library_comments(library)
    return {"engine_library": str(library), "engine_library_sha256": digest.hexdigest(),
            "engine_compiler": "; ".join(c for c in comments if c != AMX_FIX_MARKER),
            "engine_fix": "amx-tilecfg" if has_amx_fix(comments) else ""}


def cpus_seen() -> str:
    """CPUs that this process's threads last ran on (field 39 of /proc/self/task/*/stat)."""
    cpus = set()
    for stat in Path("/proc/self/task").glob("*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
            cpus.add(int(fields[36]))
        except (OSError, IndexError, ValueError):
            continue
    return format_cpu_list(cpus)


def run_task(engine, request: Request) -> Measurement:
    """Run one task and measure it, with the runner's resource use and what other work took of its cores."""
    cores = os.sched_getaffinity(0)
    cores_before, before, window = read_core_times(cores), resource.getrusage(resource.RUSAGE_SELF), time.perf_counter()
    started_unix = time.time()
    if request.kind == "bench":
        generation = engine.bench(request.n_prompt, request.n_gen)
    else:
        generation = engine.generate(request.prompt, request.max_tokens)
    window, after, cores_after = time.perf_counter() - window, resource.getrusage(resource.RUSAGE_SELF), \
        read_core_times(cores)
    user, system = after.ru_utime - before.ru_utime, after.ru_stime - before.ru_stime
    other = assess(cores_before, cores_after, user + system, window, len(cores))
    return Measurement(started_unix=started_unix, **fields_of(generation), cpu_user_s=user, cpu_sys_s=system,
                       peak_rss_bytes=after.ru_maxrss * 1024, cpus_seen=cpus_seen(),
                       involuntary_switches=after.ru_nivcsw - before.ru_nivcsw, **fields_of(other))


def main() -> int:
    replies = os.fdopen(os.dup(1), "w", buffering=1)
    os.dup2(2, 1)  # whatever the C library prints must not corrupt the protocol

    def reply(message) -> None:
        replies.write(encode(message))

    load: LoadRequest = decode(sys.stdin.readline())
    os.sched_setaffinity(0, load.cores)
    try:
        from mpibench.engine import llama

        library, variant = llama.load_cpu_backend(load.avoid_amx)
        reply(EngineFacts(**library_facts(library), engine_variant=variant, engine_extra_bufts=int(load.extra_bufts),
                          system_info=llama.LlamaEngine.system_info()))
        started = time.perf_counter()
        engine = llama.LlamaEngine(load.model_path, len(load.cores), load.n_ctx, load.seed, load.prompt_format,
                                   load.extra_bufts)
        loaded = time.perf_counter()
        if load.preflight:  # a batch (the AMX tile path when AMX is on), then single tokens
            fault = injected_fault(os.environ, load.preflight)
            if fault:
                os.kill(os.getpid(), fault)
            engine.bench(PREFLIGHT_BATCH, PREFLIGHT_SINGLES)
        desc, size, params = engine.description()
        reply(Loaded(load_s=loaded - started, preflight_s=time.perf_counter() - loaded, model_desc=desc,
                     model_bytes=size, model_params=params, engine_weight_buffers=",".join(engine.weight_buffers)))
    except Exception as error:  # the worker records the reason on every task of this group
        reply(Failed(f"model failed to load: {error}"))
        return 1
    for line in sys.stdin:
        try:
            reply(run_task(engine, decode(line)))
        except Exception as error:
            traceback.print_exc()
            reply(Failed(f"{type(error).__name__}: {error}"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
