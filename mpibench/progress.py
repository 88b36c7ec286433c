"""Rank 0's progress line (tasks done / total, ETA); silent when the output is not a terminal."""

from __future__ import annotations

import sys
import time


def format_eta(seconds: float) -> str:
    seconds = int(round(seconds))
    hours, rest = divmod(seconds, 3600)
    return f"{hours}h{rest // 60:02d}m" if hours else f"{rest // 60}m{rest % 60:02d}s"


class Progress:
    def __init__(self, total: int, stream=sys.stderr, clock=time.monotonic):
        self.total, self.stream, self.clock = total, stream, clock
        self.started = clock()
        self.enabled = hasattr(stream, "isatty") and stream.isatty()

    def line(self, done: int, failed: int) -> str:
        elapsed = self.clock() - self.started
        eta = format_eta(elapsed / done * (self.total - done)) if done else "?"
        failures = f", {failed} failed" if failed else ""
        return f"[mpibench] {done}/{self.total} tasks{failures}, elapsed {format_eta(elapsed)}, ETA {eta}"

    def update(self, done: int, failed: int = 0) -> None:
        if self.enabled:
            self.stream.write("\r\033[K" + self.line(done, failed))
            self.stream.flush()

    def finish(self) -> None:
        if self.enabled:
            self.stream.write("\n")
            self.stream.flush()
