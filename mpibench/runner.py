"""Runner child process: pins itself, loads one model once, then runs the tasks its worker sends.

Started by worker.py as `python -m mpibench.runner` with the OpenMP environment already set. Protocol:
one JSON object a line. stdin: a load request (with the engine settings, and the preflight attempt or 0),
then task requests (a prompt, or a llama-bench test). stdout (kept private: llama.cpp's own prints go to
stderr): "engine" (the CPU backend about to run, so that a crash can be explained) then "loaded" after
the model loaded and passed its preflight, or "error"; then one "done" or "error" per task.
"""

from __future__ import annotations

import hashlib
import json
import os
import resource
import sys
import time
import traceback
from pathlib import Path

from mpibench.affinity import format_cpu_list
from mpibench.preflight import PREFLIGHT_BATCH, PREFLIGHT_SINGLES, EngineSettings, injected_fault
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


def run_task(engine, request: dict) -> dict:
    before = resource.getrusage(resource.RUSAGE_SELF)
    started_unix = time.time()
    if "bench" in request:
        generation = engine.bench(request["bench"]["n_prompt"], request["bench"]["n_gen"])
    else:
        generation = engine.generate(request["prompt"], request["max_tokens"])
    after = resource.getrusage(resource.RUSAGE_SELF)
    return {
        "event": "done",
        "started_unix": started_unix,
        "prompt_tokens": generation.prompt_tokens,
        "token_ns": generation.token_ns,
        "end_ns": generation.end_ns,
        "answer": generation.text,
        "finish_reason": generation.finish_reason,
        "llama_prompt_ms": generation.llama_prompt_ms,
        "llama_eval_ms": generation.llama_eval_ms,
        "llama_prompt_n": generation.llama_prompt_n,
        "llama_eval_n": generation.llama_eval_n,
        "cpu_user_s": after.ru_utime - before.ru_utime,
        "cpu_sys_s": after.ru_stime - before.ru_stime,
        "peak_rss_bytes": after.ru_maxrss * 1024,
        "cpus_seen": cpus_seen(),
    }


def main() -> int:
    replies = os.fdopen(os.dup(1), "w", buffering=1)
    os.dup2(2, 1)  # whatever the C library prints must not corrupt the protocol

    def reply(message: dict) -> None:
        replies.write(json.dumps(message) + "\n")

    load = json.loads(sys.stdin.readline())
    os.sched_setaffinity(0, load["cores"])
    try:
        from mpibench.engine import llama

        settings = EngineSettings(**load["engine"])
        library, variant = llama.load_cpu_backend(settings.avoid_amx)
        system_info = llama.LlamaEngine.system_info()
        reply({"event": "engine", **library_facts(library), "engine_variant": variant,
               "engine_extra_bufts": int(settings.extra_bufts), "system_info": system_info})
        started = time.perf_counter()
        engine = llama.LlamaEngine(load["model_path"], len(load["cores"]), load["n_ctx"], load["seed"],
                                   load["prompt_format"], settings.extra_bufts)
        loaded = time.perf_counter()
        if load["preflight"]:  # a batch (the AMX tile path when AMX is on), then single tokens
            fault = injected_fault(os.environ, load["preflight"])
            if fault:
                os.kill(os.getpid(), fault)
            engine.bench(PREFLIGHT_BATCH, PREFLIGHT_SINGLES)
        desc, size = engine.description()
        reply({"event": "loaded", "load_s": loaded - started, "preflight_s": time.perf_counter() - loaded,
               "system_info": system_info, "model_desc": desc, "model_bytes": size,
               "engine_weight_buffers": ",".join(engine.weight_buffers)})
    except Exception as error:  # the worker records the reason on every task of this group
        reply({"event": "error", "error": f"model failed to load: {error}"})
        return 1
    for line in sys.stdin:
        try:
            reply(run_task(engine, json.loads(line)))
        except Exception as error:
            traceback.print_exc()
            reply({"event": "error", "error": f"{type(error).__name__}: {error}"})
    return 0


if __name__ == "__main__":
    sys.exit(main())
