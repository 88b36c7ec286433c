"""The load generator: runs one load point against its runners and records every request (no MPI, no llama.cpp).

A request is *issued* (its dispatch time) as soon as its intended start comes -- open loop: the seeded schedule;
closed loop: when the user's last answer reached it, plus a think time -- into one FIFO queue. From the queue it
is *submitted* to the runner with the most free slots (the first such runner on a tie) while one has a free slot
and, with max_concurrency, while fewer than that many requests are submitted and unfinished. The runner says when it
admitted (began) the request, its tokens' times and its end. Queue time (intended to admission) thus counts in
TTFT and end-to-end time, which are measured from the intended start (no coordinated omission).

The loop never spins: it waits in select() on the runners' pipes until an answer comes or the next deadline (the
next intended start, else the drain's end).

Ends: nothing is issued from the end of cool-down on; the requests in the system go on for up to drain_s. Then
queued requests are NOT_RUN and submitted ones FAILED as unfinished; the caller closes the runners (killing them
if any request was unfinished). A runner that dies (its handle raises RunnerError or OSError) fails its submitted
requests with the reason; the point goes on with the other runners, and ends when none is left (queued requests
NOT_RUN). Any other exception is a bug and propagates.

`run_point` pins its calling thread to the point's generator core for the point and, for prompt wake-ups, sets its
timer slack to the least and turns Python's cyclic GC off; it restores all three after.
"""

from __future__ import annotations

import ctypes
import gc
import heapq
import math
import os
import select
import time
from collections import deque
from contextlib import contextmanager

from mpibench.load import schedule
from mpibench.load.runners import RunnerError
from mpibench.protocol import FAILED, NOT_RUN, OK, Finished, LoadPoint, LoadPointReply, RequestRecord, Submit

RUNNER_FAILURES = (RunnerError, OSError)  # what a runner handle raises when its runner is gone; anything else is a bug


def select_wait(runners: list, timeout_s: float) -> list:
    """The runners with something to read, waiting up to `timeout_s` (run_point's default wait)."""
    return select.select(runners, [], [], timeout_s)[0]


@contextmanager
def pinned(core: int):
    """The calling thread on `core` alone for the block, then on its former CPUs again."""
    before = os.sched_getaffinity(0)
    os.sched_setaffinity(0, {core})
    try:
        yield
    finally:
        os.sched_setaffinity(0, before)


PR_SET_TIMERSLACK, PR_GET_TIMERSLACK = 29, 30  # prctl options (linux/prctl.h)
TIMER_SLACK_NS = 1  # the least a thread can ask for; the default, 50 us, lets the kernel defer each wake-up that long


@contextmanager
def punctual():
    """For the block: the calling thread's timer slack at its least and Python's cyclic GC off (collections over
    the point's growing request records stopped the loop for up to tens of ms; nothing the loop frees is cyclic);
    both as before after."""
    prctl = ctypes.CDLL(None).prctl
    slack, collecting = prctl(PR_GET_TIMERSLACK, 0, 0, 0, 0), gc.isenabled()
    prctl(PR_SET_TIMERSLACK, ctypes.c_ulong(TIMER_SLACK_NS), 0, 0, 0)
    gc.disable()
    try:
        yield
    finally:
        if collecting:
            gc.enable()
        prctl(PR_SET_TIMERSLACK, ctypes.c_ulong(slack), 0, 0, 0)


def run_point(point: LoadPoint, runners: list, clock=time.monotonic_ns, wait=select_wait,
              t0_ns: int | None = None) -> LoadPointReply:
    """Run one load point against started runners (objects with fileno, slots, submit, events) from `t0_ns` (a
    `clock` time; now when None; a shared t0 lets nodes start together) and return its requests, times from t0.
    `wait(runners, timeout_s)` returns the runners that have answers (tests give a fake clock's wait)."""
    with pinned(point.generator_core), punctual():
        cpu_ns = time.thread_time_ns()
        generator = _Generator(point, list(runners), clock, wait, clock() if t0_ns is None else t0_ns)
        started_unix = generator.start()
        generator.run()
        cpu_s = (time.thread_time_ns() - cpu_ns) / 1e9
    return LoadPointReply(index=point.index, requests=generator.records(), started_unix=started_unix,
                          ended_ns=generator.ended_ns, stopped_ns=generator.stopped_ns, generator_cpu_s=cpu_s)


class _Generator:
    """One point's dispatch loop and its requests' state (dicts of RequestRecord fields until the end)."""

    def __init__(self, point: LoadPoint, runners: list, clock, wait, t0: int):
        self.point, self.runners, self.clock, self.wait, self.t0 = point, runners, clock, wait, t0
        self.edges = schedule.bounds(point.phases)
        self.requests: list[dict] = []
        self.queue: deque[int] = deque()  # issued, not yet submitted
        self.running: list[set[int]] = [set() for _ in runners]  # submitted, unfinished, per runner
        self.alive = list(range(len(runners)))
        self.ended_ns = 0
        self.stopped_ns = -1  # when every runner failed before the schedule ended; -1: never
        shape = point.shape
        self.cap = shape.max_concurrency
        if shape.mode == "closed":
            self.thinks = [schedule.think_times(shape, point.seed, user) for user in range(shape.users)]
            starts = schedule.user_starts(shape.users, point.phases)
            self.users = [(start, user) for user, start in enumerate(starts) if start < self.edges.cooldown]
            heapq.heapify(self.users)  # (next intended start, user) of users not in the system
        else:
            self.arrivals = schedule.arrivals(shape, point.phases, point.seed)
            self.next_arrival = next(self.arrivals, None)

    def now(self) -> int:
        return self.clock() - self.t0

    def start(self) -> float:
        """Wait for t0; the wall clock's time at t0."""
        while (left := -self.now()) > 0:
            self.wait([], left / 1e9)
        return time.time() - self.now() / 1e9

    def run(self) -> None:
        """The loop. On waking, due requests are issued before answers are read, so that reading them does not
        delay the dispatch; the wait's timeout is taken from the clock just before it, so that time spent
        submitting does not delay the next deadline."""
        while True:
            now = self.now()
            self.issue(now)
            self.submit()
            if self.over(now):
                return
            ready = self.wait([self.runners[i] for i in self.alive], self.timeout(self.now()))
            now = self.now()
            self.issue(now)
            for runner in ready:
                self.collect(self.runners.index(runner), now)

    def next_start(self) -> int | None:
        """The next intended start not yet issued (None: no more)."""
        if self.point.shape.mode == "closed":
            return self.users[0][0] if self.users else None
        return self.next_arrival

    def issue(self, now: int) -> None:
        """Issue every request whose intended start has come (dispatch = now) into the queue."""
        closed = self.point.shape.mode == "closed"
        while (intended := self.next_start()) is not None and intended <= now:
            if closed:
                user = heapq.heappop(self.users)[1]
            else:
                user, self.next_arrival = -1, next(self.arrivals, None)
            self.queue.append(len(self.requests))
            self.requests.append({"request": len(self.requests), "user": user, "runner": -1,
                                  "prompt_id": self.prompt_id(len(self.requests)),
                                  "phase": schedule.phase_of(intended, self.edges), "status": NOT_RUN,
                                  "intended_ns": intended, "dispatch_ns": now})

    def prompt_id(self, request: int) -> str:
        workload = self.point.workload
        return workload.prompts[request % len(workload.prompts)][0] if workload.kind == "prompts" else "fixed"

    def message(self, request: int) -> Submit:
        """What a runner is asked for the request."""
        workload = self.point.workload
        if workload.kind == "prompts":
            text = workload.prompts[request % len(workload.prompts)][1]
            return Submit(request, prompt=text, max_tokens=workload.max_tokens)
        return Submit(request, prompt_tokens=workload.prompt_tokens, max_tokens=workload.gen_tokens, ignore_eos=True)

    def submit(self) -> None:
        """Submit queued requests in order while a runner has a free slot (and the cap allows)."""
        while self.queue and not (self.cap and sum(map(len, self.running)) >= self.cap):
            free = {i: self.runners[i].slots - len(self.running[i]) for i in self.alive}
            best = max(free, key=lambda i: (free[i], -i), default=None)
            if best is None or free[best] <= 0:
                return
            request = self.queue[0]
            try:
                self.runners[best].submit(self.message(request))
            except RUNNER_FAILURES as error:  # a dead runner's pipe: it fails, the request stays first in the queue
                self.fail_runner(best, error, self.now())
                continue
            self.queue.popleft()
            self.running[best].add(request)
            self.requests[request]["runner"] = best

    def collect(self, index: int, now: int) -> None:
        """Record the answers a runner has (or fail it, if it died)."""
        try:
            answers = self.runners[index].events()
        except RUNNER_FAILURES as error:  # the runner died or its pipe broke: it fails, the point goes on
            self.fail_runner(index, error, now)
            return
        for answer in answers:
            self.finish(index, answer, now)

    def finish(self, index: int, answer: Finished, received: int) -> None:
        """Record a request's end; its user (closed loop) goes on from when the answer reached it (`received`, ns from
        t0): a user cannot send before it has its answer, and the generator is late only after that."""
        self.running[index].discard(answer.request)
        tokens = tuple(t - self.t0 for t in answer.token_ns)
        end = answer.end_ns - self.t0
        self.requests[answer.request].update(
            status=FAILED if answer.error else OK, error=answer.error,
            admit_ns=answer.admit_ns - self.t0 if answer.admit_ns >= 0 else -1,
            first_token_ns=tokens[0] if tokens else -1, end_ns=end, token_ns=tokens,
            prompt_tokens=answer.prompt_tokens, generated_tokens=len(tokens))
        self.ended_ns = max(self.ended_ns, end)
        self.user_done(answer.request, max(end, received))

    def user_done(self, request: int, end: int) -> None:
        """A closed-loop user's request ended: it thinks, then starts its next one (if before cool-down ends)."""
        user = self.requests[request]["user"]
        if user >= 0:
            start = end + next(self.thinks[user])
            if start < self.edges.cooldown:
                heapq.heappush(self.users, (start, user))

    def fail_runner(self, index: int, error: Exception, now: int) -> None:
        """A runner is gone: its submitted requests fail with the reason, and nothing more goes to it."""
        reason = f"runner {index} failed: {str(error) or type(error).__name__}"
        self.alive.remove(index)
        for request in sorted(self.running[index]):
            self.requests[request].update(status=FAILED, error=reason, end_ns=now)
            self.user_done(request, now)
        self.running[index].clear()
        self.ended_ns = max(self.ended_ns, now)

    def over(self, now: int) -> bool:
        """Whether the point has ended; if it ends with requests left, mark them."""
        if not self.alive:
            self.stop(now, "not run: every runner failed", "")
            self.stopped_ns = now  # the load stopped before its schedule's end: the window is cut here
            return True
        if now >= self.edges.drain:
            self.stop(now, "still queued when the drain ended",
                      f"unfinished when the drain ended ({self.point.phases.drain_s:g} s after cool-down)")
            return True
        return self.next_start() is None and not self.queue and not any(self.running)

    def stop(self, now: int, queued: str, running: str) -> None:
        for request in self.queue:
            self.requests[request]["error"] = queued
        for index in self.alive:
            for request in self.running[index]:
                self.requests[request].update(status=FAILED, error=running)
        self.ended_ns = now

    def timeout(self, now: int) -> float:
        """Seconds (rounded up to a microsecond) to the next intended start, else to the drain's end."""
        deadline = self.next_start()
        if deadline is None:
            deadline = self.edges.drain
        return math.ceil(max(0, deadline - now) / 1000) / 1e6

    def records(self) -> tuple[RequestRecord, ...]:
        return tuple(RequestRecord(**fields) for fields in self.requests)
