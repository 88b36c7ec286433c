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

`serve` is a worker rank's loop. Rank 0 may hand a worker its next job while the current one runs; jobs
wait in order, so the next starts as soon as the last one's result is sent.
"""

from __future__ import annotations

import os
import select
import socket
import subprocess
import sys
import tempfile
import time
from collections import deque
from dataclasses import dataclass, field
from functools import cached_property

from mpibench import preflight
from mpibench.affinity import format_cpu_list, runner_environment
from mpibench.children import end, exit_reason, stderr_tail
from mpibench.bandwidth import ProbeError, probe
from mpibench.deadline import FIRST_TASK_S, task_limit
from mpibench.engine.build import cpu_variants, library_dir
from mpibench.metadata import cpu_flags
from mpibench.metrics import bench_throughput, latency
from mpibench.protocol import (FAILED, NOT_RUN, OK, TIMEOUT, EngineFacts, Failed, Job, Loaded, LoadPoint,
                               LoadPointReply, LoadPrepare, LoadReady, LoadRequest, Measurement, ProbeReply,
                               ProbeRequest, Request, Result, Stop, TaskReply, decode, encode, fields_of,
                               task_columns)
from mpibench.signals import Interrupted
from mpibench.tasks import Task

LOAD_FAILED = "model failed to load"
DOCTOR_HINT = "`mpibench doctor` on this node checks its llama.cpp build against its CPU"
STOP_WAIT_S = 30.0  # after an interrupt, how long a worker waits for rank 0's stop


class Runner:
    """One runner child process and the key of the group it serves."""

    def __init__(self, job: Job, settings: preflight.EngineSettings, attempt: int = 0):
        """Start a runner with these engine settings; `attempt` > 0 makes it run the preflight."""
        self.key, self.preflighted = job.runner_key, attempt > 0
        self.previous: Result | None = None  # the last successful result, for the next time limit
        self.stderr = tempfile.TemporaryFile()
        started = time.perf_counter()
        self.process = subprocess.Popen(
            [sys.executable, "-m", "mpibench.runner"],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self.stderr, text=True,
            env=dict(runner_environment(job.cores, os.environ), PYTHONFAULTHANDLER="1"),
        )
        load = LoadRequest(job.model_path, job.cores, job.n_ctx, job.seed, job.prompt_format,
                           settings.avoid_amx, settings.extra_bufts, attempt)
        limit = job.timeout if job.timeout is not None else FIRST_TASK_S
        reply = self.request(load, limit)
        self.engine: EngineFacts | None = None  # what the runner said of its CPU backend before loading
        if isinstance(reply, EngineFacts):
            self.engine, reply = reply, self.receive(limit)
        if isinstance(reply, Failed) and not reply.error.startswith(LOAD_FAILED):
            reply = Failed(f"{LOAD_FAILED}: {reply.error}", reply.dead, reply.signal, reply.timeout)
        self.loaded: Loaded | Failed = reply
        # process, imports and model load, without the preflight: what a group costs
        self.start_s = time.perf_counter() - started - (reply.preflight_s if isinstance(reply, Loaded) else 0.0)

    def request(self, message, limit: float):
        """Send one message and wait up to `limit` seconds for the reply (a Failed one if the runner dies
        or is too slow)."""
        try:
            self.process.stdin.write(encode(message))
            self.process.stdin.flush()
        except (BrokenPipeError, OSError):
            pass  # a dead runner: receive() says how it died
        return self.receive(limit)

    def receive(self, limit: float):
        """The runner's next message, or Failed (dead) if it dies or takes more than `limit` seconds."""
        try:
            ready, _, _ = select.select([self.process.stdout], [], [], limit)
            if not ready:
                self.process.kill()
                self.process.wait()
                return Failed(f"timed out after {limit:.0f} s; runner killed", dead=True, timeout=True)
            line = self.process.stdout.readline()
        except (BrokenPipeError, OSError):
            line = ""
        if line:
            return decode(line)
        code = self.process.wait()
        return Failed(f"runner {exit_reason(code)}: {stderr_tail(self.stderr)}", dead=True, signal=max(-code, 0))

    @property
    def facts(self) -> dict:
        """What the runner said of its engine, then of its load (or why it failed)."""
        return {**(fields_of(self.engine) if self.engine else {}), **fields_of(self.loaded)}

    @cached_property
    def columns(self) -> dict:
        """The result columns its engine and load fill (the same on every task of the runner)."""
        columns = fields_of(self.engine) if self.engine else {}
        if isinstance(self.loaded, Loaded):
            columns.update(model_desc=self.loaded.model_desc, model_bytes=self.loaded.model_bytes,
                           model_params=self.loaded.model_params,
                           engine_weight_buffers=self.loaded.engine_weight_buffers, load_s=self.loaded.load_s,
                           runner_start_s=self.start_s)
            if self.preflighted:
                columns["preflight_s"] = self.loaded.preflight_s
        return columns

    def close(self, kill: bool = False) -> None:
        """End the runner: politely (it exits when its stdin closes) or, with `kill`, at once."""
        end(self.process, kill)
        self.stderr.close()


def measured_columns(measurement: Measurement, job: Job) -> dict:
    """The result columns of a runner's measurement: its own fields and the metrics of its token times."""
    columns = fields_of(measurement)
    del columns["end_ns"]
    columns.update(vars(latency(measurement.token_ns, measurement.end_ns, measurement.prompt_tokens)),
                   generated_tokens=len(measurement.token_ns), status=OK)
    if job.request.kind == "bench":  # llama-bench's throughput: the test's tokens / the test's time
        columns.update(bench_throughput(job.request.n_prompt, job.request.n_gen, columns["e2e_s"]))
    return columns


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
    def __init__(self, rank: int, new_runner=Runner):
        """`new_runner(job, settings, attempt)` starts a runner (tests give a fake one)."""
        self.rank, self.new_runner = rank, new_runner
        self.hostname = socket.gethostname()
        self.runner: Runner | None = None
        self.engines: dict[str, EngineChoice] = {}  # model path -> its preflight's outcome
        self.load_node = None  # a load test's runners and generator (load/node.py), made by its first point

    def say(self, line: str) -> None:
        print(f"mpibench: rank {self.rank} on {self.hostname}: {line}", file=sys.stderr, flush=True)

    def preflight(self, job: Job) -> tuple[Runner | None, EngineChoice | None]:
        """Start the model's first runner, trying the engine configurations in fallback order while runners
        die by a fatal signal; the choice is None when the runner failed for another reason (a bad file)."""
        model, cpu_has_amx = job.task.model, "amx_int8" in cpu_flags()
        plan = preflight.fallback_plan(cpu_variants(library_dir()), cpu_has_amx)
        attempts: list[preflight.Attempt] = []
        for number, settings in enumerate(plan, 1):
            runner = self.new_runner(job, settings, attempt=number)
            signum = getattr(runner.loaded, "signal", 0)
            if isinstance(runner.loaded, Loaded):
                attempts.append(preflight.Attempt(settings, 0))
                if number > 1:
                    self.say(f"warning: {model} runs with {settings.describe()}, not as built: its numbers do not "
                             f"show this node's full engine ({preflight.summary(attempts)}); {DOCTOR_HINT}")
                return runner, EngineChoice(settings, tuple(attempts), engine=runner.facts)
            if signum not in preflight.FATAL_SIGNALS:
                return runner, None
            attempts.append(preflight.Attempt(settings, signum))
            advice = preflight.crash_advice(signum, runner.facts, cpu_has_amx) or DOCTOR_HINT
            runner.close()
            then = f"; retrying with {plan[number].describe()}" if number < len(plan) else ""
            self.say(f"{model}: preflight ({settings.describe()}) died by {preflight.signal_name(signum)}: "
                     f"{advice}{then}")
        failure = (f"{model} cannot run on {self.hostname}: every engine configuration died in preflight "
                   f"({preflight.summary(attempts)}); {advice}")
        return None, EngineChoice(None, tuple(attempts), failure, runner.facts)

    def start_runner(self, job: Job) -> Runner | None:
        """A runner for the job's group, with the engine settings its model's preflight chose (running the
        preflight first if this worker has not yet); None when no configuration passed it."""
        choice = self.engines.get(job.model_path)
        if choice is not None:
            return self.new_runner(job, choice.settings) if choice.settings else None
        runner, choice = self.preflight(job)
        if choice is not None:
            self.engines[job.model_path] = choice
            if choice.settings is None:
                self.say(f"error: {choice.failure}; its tasks are recorded as not run")
        return runner

    def load_engine(self, point: LoadPoint, cores: tuple[int, ...]) -> EngineChoice:
        """The engine settings a load point's runners start with: its model's preflight choice, as the study's
        tasks get it (run now, in a study runner on `cores` closed after it, if this worker has not yet). A model
        that does not load gets a choice without settings that says why (not kept: as for a study group, the next
        series tries again)."""
        choice = self.engines.get(point.model_path)
        if choice is not None:
            return choice
        job = Job(Task("", -1, point.model, "preflight", len(cores), 0), cores, point.model_path, point.prompt_format,
                  Request(), point.n_ctx, point.seed, None)
        runner, choice = self.preflight(job)
        if runner is not None:
            runner.close()
        if choice is None:
            return EngineChoice(None, (), f"{point.model}: {runner.loaded.error}")
        self.engines[point.model_path] = choice
        return choice

    def execute(self, job: Job | ProbeRequest | LoadPrepare | LoadPoint) -> TaskReply | ProbeReply | LoadReady | \
            LoadPointReply:
        """Run one job; its result has status "failed", "timeout" or "not_run" with the reason if it did not
        finish. A ProbeRequest measures the node's read bandwidth instead (before the first task); a LoadPrepare
        starts a load point's runners on this node, a LoadPoint runs the point."""
        if isinstance(job, (LoadPrepare, LoadPoint)):
            if self.load_node is None:
                from mpibench.load.node import LoadNode

                self.load_node = LoadNode(self.load_engine)
            return self.load_node.prepare(job.point) if isinstance(job, LoadPrepare) else self.load_node.run(job)
        if isinstance(job, ProbeRequest):
            try:
                return ProbeReply(tuple(probe(job.core_sets)))
            except ProbeError as error:
                return ProbeReply(error=str(error))
        if self.runner is None or self.runner.key != job.runner_key:
            self.close()
            self.runner = self.start_runner(job)
        known = dict(task_columns(job.task), rank=self.rank, hostname=self.hostname,
                     cores=format_cpu_list(job.cores), prompt_format=job.prompt_format, synthetic=job.synthetic)
        choice = self.engines.get(job.model_path)
        if choice is not None:
            known.update(choice.recorded())
        if self.runner is None:
            return TaskReply(Result(**known, status=NOT_RUN, error=choice.failure))
        known.update(self.runner.columns)
        if isinstance(self.runner.loaded, Failed):
            return TaskReply(Result(**known, status=FAILED, error=self.runner.loaded.error), model_failed=True)
        limit = task_limit(job.timeout, self.runner.previous, job.request.max_tokens)
        reply = self.runner.request(job.request, limit)
        if isinstance(reply, Failed):
            if reply.dead:
                self.close()
            return TaskReply(Result(**known, status=TIMEOUT if reply.timeout else FAILED, error=reply.error))
        result = Result(**known, **measured_columns(reply, job))
        self.runner.previous = result
        return TaskReply(result)

    def serve(self, channel) -> int:
        """A worker rank's loop: run jobs from `channel` (mpi.WorkerChannel) in order until rank 0 says stop;
        returns the exit code it sends."""
        jobs: deque[Job] = deque()
        try:
            while True:
                message = channel.receive(wait=not jobs)  # take every job already there before running one
                if isinstance(message, Stop):
                    return message.code
                if message is not None:
                    jobs.append(message)
                    continue
                channel.send(self.execute(jobs.popleft()))
        except Interrupted as interrupt:
            self.close(kill=True)  # a measuring runner's task is the one this interrupt costs
            while (message := channel.receive(within=STOP_WAIT_S)) is not None:
                if isinstance(message, Stop):
                    return message.code
            return 128 + interrupt.signum
        finally:
            self.close()

    def close(self, kill: bool = False) -> None:
        if self.runner is not None:
            self.runner.close(kill)
            self.runner = None
        if self.load_node is not None:
            self.load_node.close(kill)
