"""Fake load runners for the generator's tests and benchmarks, with the interface of runners.RunnerProcess
(fileno, slots, submit, events, close).

- `Script`: how a fake runner serves each request: a fixed or exponential (seeded) service time, its tokens
  spread evenly over it, a stall (no progress at all from stall_from_ns for stall_s) and a death at die_ns (both
  absolute monotonic ns; -1: never). Every slot serves on its own, as independent servers would.
- `Service`: the pure model of a Script: when a request submitted at some time is admitted, yields its tokens
  and ends.
- `SimClock` and `SimRunner`: a fake clock and runners in memory; `SimClock.wait` is run_point's wait: it moves
  the clock to the next answer or to the timeout, so tests run whole points in no time.
- `FakeRunner`: this file run as a child process that answers Submit lines on real pipes by the real clock;
  FakeRunner(Script()) is the null runner (it answers every request at once).
- `fake_point`: a LoadPoint for them, its generator on one of this process's CPUs (the first by default).
"""

from __future__ import annotations

import heapq
import json
import os
import random
import select
import subprocess
import sys
import time
from dataclasses import asdict, dataclass

from mpibench.load.runners import RunnerError
from mpibench.protocol import Finished, LoadPoint, LoadShape, Phases, ServerConfig, Submit, Workload, decode, encode

NS = 1_000_000_000
CPUS = tuple(sorted(os.sched_getaffinity(0)))
FIXED = Workload("fixed", prompt_tokens=8, gen_tokens=4)


def fake_point(shape: LoadShape, phases: Phases, workload: Workload = FIXED, runners: int = 1, slots: int = 1,
               generator_core: int = CPUS[0]) -> LoadPoint:
    """A load point for fake runners: the generator on `generator_core`, the runners' cores the others."""
    others = tuple(c for c in CPUS if c != generator_core) or CPUS
    return LoadPoint(index=3, server=ServerConfig(runners, slots, 1), shape=shape, workload=workload, phases=phases,
                     model="fake", model_path="/fake", prompt_format="chat", n_ctx=512, seed=11, cores=others,
                     generator_core=generator_core)


@dataclass(frozen=True)
class Script:
    service_s: float = 0.0
    exponential: bool = False
    stall_from_ns: int = -1
    stall_s: float = 0.0
    die_ns: int = -1
    seed: int = 0


class Service:
    """A Script's answers: admission, token times and end of each request, by the time it was submitted."""

    def __init__(self, script: Script, slots: int):
        self.script, self.rng = script, random.Random(script.seed)
        self.free_at = [0] * slots  # when each slot is next free
        self.stall = (script.stall_from_ns, script.stall_from_ns + round(script.stall_s * NS))

    def progressed(self, start: int, work: int) -> int:
        """When `work` ns of service begun at `start` are done, the stall skipped."""
        first, last = self.stall
        if first <= start < last:
            start = last
        return start + work + (last - first if start < first < start + work else 0)

    def serve(self, submit: Submit, now: int) -> Finished:
        slot = min(range(len(self.free_at)), key=self.free_at.__getitem__)
        admit = max(now, self.free_at[slot])
        first, last = self.stall
        admit = last if first <= admit < last else admit
        mean = self.script.service_s * NS
        work = round(self.rng.expovariate(1 / mean) if self.script.exponential and mean > 0 else mean)
        count = max(1, submit.max_tokens)
        tokens = tuple(self.progressed(admit, work * k // count) for k in range(1, count + 1))
        self.free_at[slot] = tokens[-1]
        return Finished(submit.request, admit, tokens, tokens[-1], max(1, submit.prompt_tokens), "length")


class SimClock:
    """A fake monotonic clock (call it for the time) whose `wait` jumps to the next answer or the timeout."""

    def __init__(self, start: int = 1_000 * NS):
        self.ns, self.waits = start, 0

    def __call__(self) -> int:
        return self.ns

    def wait(self, runners: list, timeout_s: float) -> list:
        self.waits += 1
        deadline = self.ns + round(timeout_s * NS)
        due = min((runner.next_ns() for runner in runners), default=deadline)
        self.ns = max(self.ns, min(due, deadline))
        return [runner for runner in runners if runner.next_ns() <= self.ns]


class SimRunner:
    """A runner in memory on a SimClock; `submitted` keeps what it was sent and `peak` the most it held at once.
    Each submit and events call takes `call_ns` of the clock (as writing and reading pipes takes time)."""

    def __init__(self, clock: SimClock, script: Script = Script(), slots: int = 1, call_ns: int = 0):
        self.clock, self.script, self.slots, self.call_ns = clock, script, slots, call_ns
        self.service = Service(script, slots)
        self.pending: list[tuple[int, int, Finished]] = []
        self.submitted: list[Submit] = []
        self.peak = 0

    def fileno(self) -> int:
        raise AssertionError("a SimRunner is waited on by SimClock.wait, not select")

    def next_ns(self) -> float:
        ends = [self.pending[0][0]] if self.pending else []
        return min(ends + ([self.script.die_ns] if self.script.die_ns >= 0 else []), default=float("inf"))

    def submit(self, message: Submit) -> None:
        if 0 <= self.script.die_ns <= self.clock():
            raise BrokenPipeError("runner's stdin is closed")
        answer = self.service.serve(message, self.clock())
        heapq.heappush(self.pending, (answer.end_ns, message.request, answer))
        self.submitted.append(message)
        self.peak = max(self.peak, len(self.pending))
        self.clock.ns += self.call_ns

    def events(self) -> list[Finished]:
        if 0 <= self.script.die_ns <= self.clock():
            raise RunnerError("runner killed by signal 9")
        done = []
        while self.pending and self.pending[0][0] <= self.clock():
            done.append(heapq.heappop(self.pending)[2])
        self.clock.ns += self.call_ns
        return done

    def close(self, kill: bool = False) -> None:
        self.pending.clear()


class FakeRunner:
    """This file as a child process serving a Script over pipes (JSON lines, as a load runner does), optionally
    pinned to `cores`."""

    def __init__(self, script: Script = Script(), slots: int = 1, cores: tuple[int, ...] = ()):
        self.slots, self.buffer = slots, b""
        self.process = subprocess.Popen([sys.executable, __file__, json.dumps(asdict(script)), str(slots)],
                                        stdin=subprocess.PIPE, stdout=subprocess.PIPE, bufsize=0)
        if cores:
            os.sched_setaffinity(self.process.pid, cores)
        os.set_blocking(self.process.stdout.fileno(), False)

    def fileno(self) -> int:
        return self.process.stdout.fileno()

    def submit(self, message: Submit) -> None:
        self.process.stdin.write(encode(message).encode())

    def events(self) -> list[Finished]:
        ended = False
        while True:
            try:
                data = os.read(self.fileno(), 1 << 16)
            except BlockingIOError:
                break
            if not data:
                ended = True
                break
            self.buffer += data
        *lines, self.buffer = self.buffer.split(b"\n")
        if ended and not lines:
            raise RunnerError(f"runner exited with code {self.process.wait()}")
        return [decode(line.decode()) for line in lines]

    def close(self, kill: bool = False) -> None:
        if kill:
            self.process.kill()
        self.process.stdin.close()
        self.process.wait(timeout=10)
        self.process.stdout.close()


def serve(script: Script, slots: int) -> None:
    """The child: answer each Submit line when the Script says it ends; exit at its death time or stdin's end."""
    service, pending, buffer = Service(script, slots), [], b""
    stdin, stdout = sys.stdin.buffer.raw, sys.stdout.buffer
    while True:
        now = time.monotonic_ns()
        if 0 <= script.die_ns <= now:
            os._exit(3)
        ready = []
        while pending and pending[0][0] <= now:
            ready.append(heapq.heappop(pending)[2])
        if ready:
            stdout.write(b"".join(encode(answer).encode() for answer in ready))
            stdout.flush()
        deadlines = [pending[0][0]] if pending else []
        deadlines += [script.die_ns] if script.die_ns >= 0 else []
        timeout = max(0, min(deadlines) - now) / NS if deadlines else None
        if select.select([stdin], [], [], timeout)[0]:
            data = stdin.read(1 << 16)
            if not data:
                return
            *lines, buffer = (buffer + data).split(b"\n")
            now = time.monotonic_ns()
            for line in lines:
                answer = service.serve(decode(line.decode()), now)
                heapq.heappush(pending, (answer.end_ns, answer.request, answer))


if __name__ == "__main__":
    serve(Script(**json.loads(sys.argv[1])), int(sys.argv[2]))
