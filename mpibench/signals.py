"""SIGINT and SIGTERM (Slurm's time limit) as an exception, so that every rank stops cleanly."""

from __future__ import annotations

import signal


class Interrupted(Exception):
    """SIGINT or SIGTERM arrived."""

    def __init__(self, signum: int):
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


def _interrupt(signum, frame):
    raise Interrupted(signum)


def raise_on_interrupt() -> None:
    """From now on, SIGINT and SIGTERM raise Interrupted in the main thread."""
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, _interrupt)
