"""The runner child processes (the study's and the load test's): the tail of their stderr, and ending them."""

from __future__ import annotations

import os
import subprocess

STDERR_TAIL = 2000  # bytes of a runner's stderr kept with its failure
CLOSE_WAIT_S = 10.0  # how long a runner gets to exit before it is killed


def stderr_tail(stderr) -> str:
    """The last STDERR_TAIL bytes of a child's stderr (a temporary file), as text."""
    stderr.seek(0, os.SEEK_END)
    stderr.seek(max(0, stderr.tell() - STDERR_TAIL))
    return stderr.read().decode("utf-8", errors="replace").strip()


def end(process: subprocess.Popen, kill: bool = False) -> None:
    """End a child: politely (it exits once its stdin closes) or, with `kill`, at once; killed if it takes
    longer than CLOSE_WAIT_S."""
    if process.poll() is None:
        if kill:
            process.kill()
        else:
            process.stdin.close()
        try:
            process.wait(timeout=CLOSE_WAIT_S)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def exit_reason(code: int) -> str:
    """How a child ended, from its return code: "killed by signal 9", "exited with code 1"."""
    return f"killed by signal {-code}" if code < 0 else f"exited with code {code}"
