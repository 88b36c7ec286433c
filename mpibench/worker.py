"""A worker: runs jobs in a runner child process pinned to the job's cores, and turns replies into records.

The runner lives as long as consecutive jobs share its (model, cores, settings), so a model is loaded once
per group. While a runner measures, the worker waits on the runner's pipe (select, no CPU) until the
task's time limit; a runner past it is killed and the task recorded as "timeout". A runner that dies gets
its task recorded as "failed" with the signal or exit code and the tail of its stderr; the next task of
the group starts a fresh runner. A model that fails to load fails each task of the group at once, without
loading again.

A worker's first runner of a model also runs the engine preflight (preflight.py): a runner that dies by a
fatal signal there is started again with the next engine configuration, and the configuration that passed
serves every later runner of the model. When none passes, the model's tasks are recorded as "not_run" with
the cause and the fix.
"""

from __future__ import annotations

import json
import os
import select
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field

from mpibench import preflight
from mpibench.affinity import format_cpu_list, runner_environment
from mpibench.deadline import FIRST_TASK_S, task_limit
from mpibench.engine.build import cpu_variants, library_dir
from mpibench.metadata import cpu_flags
from mpibench.metrics import latency
from mpibench.store.schema import empty_result

STDERR_TAIL = 2000
LOAD_FAILED = "model failed to load"
RUNNER_SETTINGS = ("model_path", "cores", "n_ctx", "seed", "prompt_format")  # what a runner is started with
DOCTOR_HINT = "`mpibench doctor` on this node checks its llama.cpp build against its CPU"
ENGINE_FACTS = ("system_info", "model_desc", "model_bytes", "engine_library", "engine_library_sha256",
                "engine_compiler", "engine_fix", "engine_variant", "engine_extra_bufts", "engine_weight_buffers")


def bench_throughput(test: dict, seconds: float) -> dict:
    """ppN: N prompt tokens / time (no TTFT: nothing is generated); tgN: N tokens / time."""
    nan = float("nan")
    if test["n_prompt"]:
        return {"prefill_tok_s": test["n_prompt"] / seconds, "ttft_s": nan}
    return {"decode_tok_s": test["n_gen"] / seconds, "prefill_tok_s": nan}


class Runner:
    """One runner child process and the key of the group it serves."""

    def __init__(self, key: tuple, job: dict, settings: preflight.EngineSettings, attempt: int = 0):
        """Start a runner with these engine settings; `attempt` > 0 makes it run the preflight."""
        self.key, self.preflighted = key, attempt > 0
        self.previous: dict | None = None  # the last successful record, for the next time limit
        self.stderr = tempfile.TemporaryFile()
        started = time.perf_counter()
        self.process = subprocess.Popen(
            [sys.executable, "-m", "mpibench.runner"],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self.stderr, text=True,
            env=dict(runner_environment(tuple(job["cores"]), os.environ), PYTHONFAULTHANDLER="1"),
        )
        load = dict({k: job[k] for k in RUNNER_SETTINGS}, engine=asdict(settings), preflight=attempt)
        limit = job["timeout"] if job["timeout"] is not None else FIRST_TASK_S
        self.loaded = self.request(load, limit)
        self.engine: dict = {}  # what the runner said of its CPU backend before loading the model
        if self.loaded["event"] == "engine":
            self.engine, self.loaded = self.loaded, self.receive(limit)
        # process, imports and model load, without the preflight: what a group costs
        self.start_s = time.perf_counter() - started - self.loaded.get("preflight_s", 0.0)
        if self.loaded["event"] != "loaded" and not self.loaded["error"].startswith(LOAD_FAILED):
            self.loaded["error"] = f"{LOAD_FAILED}: {self.loaded['error']}"

    def request(self, message: dict, limit: float) -> dict:
        """Send one request and wait up to `limit` seconds for its reply; a dead or late runner yields an
        error reply saying why (with "dead": True, and "timeout": True when it was too slow)."""
        try:
            self.process.stdin.write(json.dumps(message) + "\n")
            self.process.stdin.flush()
        except (BrokenPipeError, OSError):
            pass  # a dead runner: receive() says how it died
        return self.receive(limit)

    def receive(self, limit: float) -> dict:
        """The runner's next reply, or an error reply if it dies or takes more than `limit` seconds."""
        try:
            ready, _, _ = select.select([self.process.stdout], [], [], limit)
            if not ready:
                self.process.kill()
                self.process.wait()
                return {"event": "error", "error": f"timed out after {limit:.0f} s; runner killed",
                        "dead": True, "timeout": True}
            line = self.process.stdout.readline()
        except (BrokenPipeError, OSError):
            line = ""
        if line:
            return json.loads(line)
        code = self.process.wait()
        reason = f"killed by signal {-code}" if code < 0 else f"exited with code {code}"
        return {"event": "error", "error": f"runner {reason}: {self.stderr_tail()}", "dead": True,
                "signal": max(-code, 0)}

    @property
    def facts(self) -> dict:
        """What the runner said of its engine, then of its load (or why it failed)."""
        return dict(self.engine, **self.loaded)

    def stderr_tail(self) -> str:
        self.stderr.seek(0, os.SEEK_END)
        self.stderr.seek(max(0, self.stderr.tell() - STDERR_TAIL))
        return self.stderr.read().decode("utf-8", errors="replace").strip()

    def close(self, kill: bool = False) -> None:
        """End the runner: politely (it exits when its stdin closes) or, with `kill`, at once."""
        if self.process.poll() is None:
            if kill:
                self.process.kill()
            else:
                self.process.stdin.close()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.stderr.close()


@dataclass(frozen=True)
class EngineChoice:
    """What the preflight of one model found: the settings that passed (None: none did), every attempt,
    and, when none passed, the line that says why and what to do."""

    settings: preflight.EngineSettings | None
    attempts: tuple[preflight.Attempt, ...]
    failure: str = ""
    engine: dict = field(default_factory=dict)  # what the last runner said of its engine (and load, if it passed)

    def recorded(self) -> dict:
        return {"preflight": preflight.summary(list(self.attempts)), "engine_fallback": int(len(self.attempts) > 1)}


class Worker:
    def __init__(self, rank: int):
        self.rank = rank
        self.hostname = socket.gethostname()
        self.runner: Runner | None = None
        self.engines: dict[str, EngineChoice] = {}  # model path -> its preflight's outcome

    def say(self, line: str) -> None:
        print(f"mpibench: rank {self.rank} on {self.hostname}: {line}", file=sys.stderr, flush=True)

    def preflight(self, key: tuple, job: dict) -> tuple[Runner | None, EngineChoice | None]:
        """Start the model's first runner, trying the engine configurations in fallback order while runners
        die by a fatal signal; the choice is None when the runner failed for another reason (a bad file)."""
        model, cpu_has_amx = job["task"]["model"], "amx_int8" in cpu_flags()
        plan = preflight.fallback_plan(cpu_variants(library_dir()), cpu_has_amx)
        attempts: list[preflight.Attempt] = []
        for number, settings in enumerate(plan, 1):
            runner = Runner(key, job, settings, attempt=number)
            signum = runner.loaded.get("signal", 0)
            if runner.loaded["event"] == "loaded":
                attempts.append(preflight.Attempt(settings, 0))
                if number > 1:
                    self.say(f"warning: {model} runs with {settings.describe()}, not as built: its numbers do not "
                             f"show this node's full engine ({preflight.summary(attempts)}); {DOCTOR_HINT}")
                return runner, EngineChoice(settings, tuple(attempts), engine=runner.facts)
            if signum not in preflight.FATAL_SIGNALS:
                return runner, None
            attempts.append(preflight.Attempt(settings, signum))
            advice = preflight.crash_advice(signum, runner.engine, cpu_has_amx) or DOCTOR_HINT
            runner.close()
            then = f"; retrying with {plan[number].describe()}" if number < len(plan) else ""
            self.say(f"{model}: preflight ({settings.describe()}) died by {preflight.signal_name(signum)}: "
                     f"{advice}{then}")
        failure = (f"{model} cannot run on {self.hostname}: every engine configuration died in preflight "
                   f"({preflight.summary(attempts)}); {advice}")
        self.say(f"error: {failure}; its tasks are recorded as not run")
        return None, EngineChoice(None, tuple(attempts), failure, runner.engine)

    def start_runner(self, key: tuple, job: dict) -> Runner | None:
        """A runner for the job's group, with the engine settings its model's preflight chose (running the
        preflight first if this worker has not yet); None when no configuration passed it."""
        choice = self.engines.get(job["model_path"])
        if choice is not None:
            return Runner(key, job, choice.settings) if choice.settings else None
        runner, choice = self.preflight(key, job)
        if choice is not None:
            self.engines[job["model_path"]] = choice
        return runner

    def execute(self, job: dict) -> dict:
        """Run one job and return its result record (status "failed", "timeout" or "not_run" with the reason
        if it did not finish)."""
        key = tuple(json.dumps(job[k]) for k in RUNNER_SETTINGS)
        if self.runner is None or self.runner.key != key:
            self.close()
            self.runner = self.start_runner(key, job)
        task = job["task"]
        record = empty_result(
            **{k: task[k] for k in ("index", "kind", "model", "prompt_id", "threads", "repetition")},
            warmup=int(task["repetition"] < 0),
            task_id=task["id"], rank=self.rank, hostname=self.hostname, cores=format_cpu_list(job["cores"]),
            prompt_format=job["prompt_format"], status="failed", answer="", token_ns=[],
        )
        choice = self.engines.get(job["model_path"])
        if choice is not None:
            record.update(choice.recorded())
        if self.runner is None:
            record.update(status="not_run", error=choice.failure)
            return record
        record.update({k: v for k, v in self.runner.facts.items() if k in ENGINE_FACTS})
        loaded = self.runner.loaded
        if loaded["event"] != "loaded":
            record["error"] = loaded["error"]
            return record
        limit = task_limit(job["timeout"], self.runner.previous, job["max_tokens"])
        reply = self.runner.request(job["request"], limit)
        if reply.get("dead"):
            self.close()
        if reply["event"] != "done":
            record.update(error=reply["error"], status="timeout" if reply.get("timeout") else "failed")
            return record
        metrics = latency(reply["token_ns"], reply["end_ns"], reply["prompt_tokens"])
        record.update({k: v for k, v in reply.items() if k in record or k in ("answer", "token_ns")})
        record.update(vars(metrics), status="ok", load_s=loaded["load_s"], runner_start_s=self.runner.start_s,
                      generated_tokens=len(reply["token_ns"]))
        if self.runner.preflighted:
            record["preflight_s"] = loaded["preflight_s"]
        if "bench" in job["request"]:  # llama-bench's throughput: the test's tokens / the test's time
            record.update(bench_throughput(job["request"]["bench"], record["e2e_s"]))
        self.runner.previous = record
        return record

    def close(self, kill: bool = False) -> None:
        if self.runner is not None:
            self.runner.close(kill)
            self.runner = None
