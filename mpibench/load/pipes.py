"""Lines from a pipe, read as they come: a load runner reads its requests between decode steps, and its worker
reads the runner's answers, without ever blocking on a half-written line (select sees the descriptor, not a
Python file's buffer, so reads go through os.read)."""

from __future__ import annotations

import os
import select

CHUNK = 1 << 16


class PipeLines:
    """Complete lines from the file descriptor `fd`; `closed` once its writer is gone."""

    def __init__(self, fd: int):
        self.fd, self.buffer, self.closed = fd, b"", False

    def read(self, timeout: float | None = 0.0) -> list[str]:
        """Every complete line there is, waiting up to `timeout` seconds for the first (None: until a line comes
        or the pipe closes; 0: not at all)."""
        wait = 0.0 if b"\n" in self.buffer else timeout
        while not self.closed and select.select([self.fd], [], [], wait)[0]:
            chunk = os.read(self.fd, CHUNK)
            self.closed = not chunk
            self.buffer += chunk
            wait = 0.0 if b"\n" in self.buffer else timeout
        *lines, self.buffer = self.buffer.split(b"\n")
        return [line.decode("utf-8") for line in lines]
