"""The sleep backoff every waiting loop shares: waits poll, they never spin a core that is being measured."""

from __future__ import annotations

import time


class Backoff:
    """Sleeps that start at `first` and double to `longest` while nothing happens."""

    def __init__(self, first: float = 0.001, longest: float = 0.05, sleep=time.sleep):
        self.first, self.longest, self.delay, self._sleep = first, longest, first, sleep

    def reset(self) -> None:
        self.delay = self.first

    def sleep(self) -> None:
        self._sleep(self.delay)
        self.delay = min(self.delay * 2, self.longest)
