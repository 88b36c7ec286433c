"""Rank 0's progress on its stderr: tasks done / total, failures, elapsed, ETA, the cell running now and the
latest throughput.

On a terminal it is one live line, redrawn as tasks start and end. Anywhere else (mpiexec pipes rank 0's
stderr; a Slurm log is a file) it is a newline-terminated status line every `interval` seconds and at each
change of model, so that `tail -f` on a job's log shows where a long run is. `quiet` turns both off.
"""

from __future__ import annotations

import math
import sys
import time

from mpibench.tasks import Task

STATUS_INTERVAL_S = 30.0  # default seconds between status lines off a terminal


def format_eta(seconds: float) -> str:
    seconds = int(round(seconds))
    hours, rest = divmod(seconds, 3600)
    return f"{hours}h{rest // 60:02d}m" if hours else f"{rest // 60}m{rest % 60:02d}s"


def cell_name(task: Task) -> str:
    """The cell a task belongs to, as a status line names it."""
    return f"{task.model} {task.prompt_id} t={task.threads}"


def latest_rate(result) -> str:
    """The result's throughput in words: decode tok/s, or prefill tok/s for a prefill-only test; "" if none."""
    for name, value in (("decode", result.decode_tok_s), ("prefill", result.prefill_tok_s)):
        if math.isfinite(value):
            return f"{name} {value:.1f} tok/s"
    return ""


class Progress:
    def __init__(self, total: int, stream=sys.stderr, clock=time.monotonic, interval: float = STATUS_INTERVAL_S,
                 quiet: bool = False):
        self.total, self.stream, self.clock, self.interval = total, stream, clock, interval
        self.started = self.last_line = clock()
        self.live = not quiet and hasattr(stream, "isatty") and stream.isatty()
        self.lines = not quiet and not self.live
        self.done = self.failed = 0
        self.current: Task | None = None
        self.rate = ""

    def line(self, done: int, failed: int) -> str:
        elapsed = self.clock() - self.started
        eta = format_eta(elapsed / done * (self.total - done)) if done else "?"
        failures = f", {failed} failed" if failed else ""
        now = f", running {cell_name(self.current)}" if self.current is not None and done < self.total else ""
        rate = f", last {self.rate}" if self.rate else ""
        return f"[mpibench] {done}/{self.total} tasks{failures}, elapsed {format_eta(elapsed)}, ETA {eta}{now}{rate}"

    @property
    def next_line_at(self) -> float:
        """When the next status line is due (clock time); infinity when none will be."""
        return self.last_line + self.interval if self.lines else math.inf

    def running(self, task: Task) -> None:
        """A task started: the live line names it; a status line marks each change of model."""
        new_model = self.current is None or self.current.model != task.model
        self.current = task
        if self.live:
            self._draw()
        elif self.lines and new_model:
            self._say()

    def update(self, done: int, failed: int = 0, result=None) -> None:
        """A task ended with `result` (None: a task that did not run)."""
        self.done, self.failed = done, failed
        if result is not None and latest_rate(result):
            self.rate = latest_rate(result)
        if self.live:
            self._draw()
        else:
            self.tick()

    def tick(self) -> None:
        """Print a status line if one is due."""
        if self.lines and self.clock() >= self.next_line_at:
            self._say()

    def finish(self) -> None:
        if self.live:
            self.stream.write("\n")
            self.stream.flush()
        elif self.lines:
            self._say()

    def _draw(self) -> None:
        self.stream.write("\r\033[K" + self.line(self.done, self.failed))
        self.stream.flush()

    def _say(self) -> None:
        self.last_line = self.clock()
        self.stream.write(self.line(self.done, self.failed) + "\n")
        self.stream.flush()
