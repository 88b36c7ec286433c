"""The worker's side of load runners: start them pinned to disjoint cores, send them requests, read what ended.

A RunnerProcess is one `python -m mpibench.load.server` child (load/server.py). The generator drives it through
`fileno()` (for select), `slots`, `submit`, `events` and `close`; it never blocks on a runner except in
`wait_ready`.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile

from mpibench.affinity import format_cpu_list, physical_first, runner_environment
from mpibench.children import CLOSE_WAIT_S, end, exit_reason, stderr_tail
from mpibench.load.pipes import PipeLines
from mpibench.metadata import core_siblings
from mpibench.preflight import EngineSettings
from mpibench.protocol import Failed, Finished, LoadPoint, Ready, ServeRequest, Submit, decode, encode
from mpibench.table import counted



class RunnerError(Exception):
    """A load runner could not start, or died: why (with the tail of its stderr)."""


class RunnerProcess:
    """One load runner child process and its pipes."""

    def __init__(self, process: subprocess.Popen, stderr, request: ServeRequest):
        self.process, self.stderr, self.request = process, stderr, request
        self.lines = PipeLines(process.stdout.fileno())
        self.ready: Ready | None = None

    @classmethod
    def start(cls, request: ServeRequest) -> RunnerProcess:
        """Start a runner pinned to the request's cores and send it the request (Ready comes with wait_ready)."""
        stderr = tempfile.TemporaryFile()
        process = subprocess.Popen([sys.executable, "-m", "mpibench.load.server"], stdin=subprocess.PIPE,
                                   stdout=subprocess.PIPE, stderr=stderr, bufsize=0,
                                   env=dict(runner_environment(request.cores, os.environ), PYTHONFAULTHANDLER="1"))
        runner = cls(process, stderr, request)
        runner._write(encode(request))
        return runner

    @property
    def slots(self) -> int:
        """How many sequences it runs at once (as llama.cpp took it, from Ready)."""
        return self.ready.slots if self.ready else self.request.slots

    def fileno(self) -> int:
        return self.process.stdout.fileno()

    def wait_ready(self, limit_s: float) -> Ready:
        """Its Ready, within `limit_s` seconds; RunnerError when it failed to load, died or took longer."""
        lines = self.lines.read(limit_s)
        if not lines:
            if self.lines.closed:
                raise RunnerError(self._death())
            self.close(kill=True)
            raise RunnerError(f"load runner on CPUs {format_cpu_list(self.request.cores)} was not ready after "
                              f"{limit_s:g} s; killed")
        reply = decode(lines[0])
        if isinstance(reply, Failed):
            self.close(kill=True)
            raise RunnerError(f"load runner on CPUs {format_cpu_list(self.request.cores)}: {reply.error}")
        self.ready = reply
        return reply

    def submit(self, *requests: Submit) -> None:
        """Send requests, in one write (so that requests sent together join the same decode step)."""
        self._write("".join(map(encode, requests)))

    def events(self) -> list[Finished]:
        """Every Finished the runner has sent, without waiting; RunnerError when it died (after the last of
        them was returned)."""
        lines = self.lines.read(0.0)
        if self.lines.closed and not lines:
            raise RunnerError(self._death())
        return [decode(line) for line in lines]

    def close(self, kill: bool = False) -> None:
        """End the runner: politely (it finishes what runs once its stdin closes) or, with `kill`, at once."""
        end(self.process, kill)
        for pipe in (self.process.stdin, self.process.stdout, self.stderr):
            pipe.close()

    def _write(self, text: str) -> None:
        try:
            self.process.stdin.write(text.encode("utf-8"))
        except (BrokenPipeError, OSError) as error:
            raise RunnerError(self._death()) from error

    def _death(self) -> str:
        """How the runner ended (it closed its stdout): its exit code or signal and the tail of its stderr."""
        try:
            code = self.process.wait(timeout=CLOSE_WAIT_S)
        except subprocess.TimeoutExpired:
            self.process.kill()
            code = self.process.wait()
        tail = stderr_tail(self.stderr)
        return f"load runner on CPUs {format_cpu_list(self.request.cores)} {exit_reason(code)}" + \
            (f": {tail}" if tail else "")


def partition_cores(cores: tuple[int, ...], generator_core: int, partitions: int,
                    threads: int) -> list[tuple[int, ...]]:
    """`partitions` disjoint sets of `threads` cores, taken in order from `cores` (physical first), none of them
    the generator's core."""
    usable = [c for c in cores if c != generator_core]
    need = partitions * threads
    if need > len(usable):
        besides = f" besides the generator's CPU {generator_core}" if generator_core in cores else ""
        raise RunnerError(f"{counted(partitions, 'load runner')} of {counted(threads, 'thread')} each need "
                          f"{need} cores, but the node offers {len(usable)}{besides} (CPUs "
                          f"{format_cpu_list(usable) or 'none'}); use fewer partitions or threads")
    return [tuple(usable[i * threads:(i + 1) * threads]) for i in range(partitions)]


def runner_cores(point: LoadPoint) -> list[tuple[int, ...]]:
    """The cores of each of the point's P runners: T cores of its own, physical first, never the generator's."""
    cores = physical_first(point.cores, core_siblings(point.cores))
    return partition_cores(cores, point.generator_core, point.server.partitions, point.server.threads)


def start_runners(point: LoadPoint, settings: EngineSettings) -> list[RunnerProcess]:
    """The point's P runners on their cores (runner_cores), with the engine settings its model's preflight chose,
    loading at once; the caller waits for each one's Ready."""
    server = point.server
    requests = [ServeRequest(point.model_path, cores, len(cores), server.slots, point.n_ctx, point.seed,
                             point.prompt_format, server.kv_unified, settings.avoid_amx, settings.extra_bufts)
                for cores in runner_cores(point)]
    return [RunnerProcess.start(request) for request in requests]
