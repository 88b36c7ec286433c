"""A worker: runs jobs in a runner child process pinned to the job's cores, and turns replies into records.

The runner lives as long as consecutive jobs share its (model, cores, settings), so a model is loaded once
per group. While a runner measures, the worker waits on the runner's pipe (select, no CPU) until the
task's time limit; a runner past it is killed and the task recorded as "timeout". A runner that dies gets
its task recorded as "failed" with the signal or exit code and the tail of its stderr; the next task of
the group starts a fresh runner. A model that fails to load fails each task of the group at once, without
loading again.
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

from mpibench.affinity import format_cpu_list, runner_environment
from mpibench.deadline import FIRST_TASK_S, task_limit
from mpibench.metrics import latency
from mpibench.store.schema import empty_result

STDERR_TAIL = 2000
LOAD_FAILED = "model failed to load"
RUNNER_SETTINGS = ("model_path", "cores", "n_ctx", "seed", "prompt_format")  # what a runner is started with


def bench_throughput(test: dict, seconds: float) -> dict:
    """ppN: N prompt tokens / time (no TTFT: nothing is generated); tgN: N tokens / time."""
    nan = float("nan")
    if test["n_prompt"]:
        return {"prefill_tok_s": test["n_prompt"] / seconds, "ttft_s": nan}
    return {"decode_tok_s": test["n_gen"] / seconds, "prefill_tok_s": nan}


class Runner:
    """One runner child process and the key of the group it serves."""

    def __init__(self, key: tuple, job: dict):
        self.key = key
        self.previous: dict | None = None  # the last successful record, for the next time limit
        self.stderr = tempfile.TemporaryFile()
        started = time.perf_counter()
        self.process = subprocess.Popen(
            [sys.executable, "-m", "mpibench.runner"],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self.stderr, text=True,
            env=dict(runner_environment(tuple(job["cores"]), os.environ), PYTHONFAULTHANDLER="1"),
        )
        load = {k: job[k] for k in RUNNER_SETTINGS}
        self.loaded = self.request(load, job["timeout"] if job["timeout"] is not None else FIRST_TASK_S)
        self.start_s = time.perf_counter() - started  # process, imports and model load: what a group costs
        if self.loaded["event"] != "loaded" and not self.loaded["error"].startswith(LOAD_FAILED):
            self.loaded["error"] = f"{LOAD_FAILED}: {self.loaded['error']}"

    def request(self, message: dict, limit: float) -> dict:
        """Send one request and wait up to `limit` seconds for its reply; a dead or late runner yields an
        error reply saying why (with "dead": True, and "timeout": True when it was too slow)."""
        try:
            self.process.stdin.write(json.dumps(message) + "\n")
            self.process.stdin.flush()
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
        return {"event": "error", "error": f"runner {reason}: {self.stderr_tail()}", "dead": True}

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


class Worker:
    def __init__(self, rank: int):
        self.rank = rank
        self.hostname = socket.gethostname()
        self.runner: Runner | None = None

    def execute(self, job: dict) -> dict:
        """Run one job and return its result record (status "failed" or "timeout" with the reason if it did not finish)."""
        key = tuple(json.dumps(job[k]) for k in RUNNER_SETTINGS)
        if self.runner is None or self.runner.key != key:
            self.close()
            self.runner = Runner(key, job)
        task = job["task"]
        record = empty_result(
            **{k: task[k] for k in ("index", "kind", "model", "prompt_id", "threads", "repetition")},
            warmup=int(task["repetition"] < 0),
            task_id=task["id"], rank=self.rank, hostname=self.hostname, cores=format_cpu_list(job["cores"]),
            prompt_format=job["prompt_format"], status="failed", answer="", token_ns=[],
        )
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
        if "bench" in job["request"]:  # llama-bench's throughput: the test's tokens / the test's time
            record.update(bench_throughput(job["request"]["bench"], record["e2e_s"]))
        record.update({k: loaded[k] for k in ("system_info", "model_desc", "model_bytes")})  # per host / model
        self.runner.previous = record
        return record

    def close(self, kill: bool = False) -> None:
        if self.runner is not None:
            self.runner.close(kill)
            self.runner = None
