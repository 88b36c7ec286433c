"""The read-bandwidth probe: how fast a node's cores read memory, at each thread count a run uses.

One thread per core, each pinned to its core as a runner's OpenMP threads are (the cores a task of that count
gets), sums its own slice of float64 values with numpy (which releases the GIL while it reads). Each thread
allocates and first touches its own slice. The working set, all slices together, is several times the node's
last-level cache, so every pass reads memory. A pass's bandwidth = bytes / (last thread's end - first thread's
start); passes repeat until the last WINDOW of them vary by under CV_LIMIT (stdev / mean), or the cap is reached;
the figure is their median. It takes well under a second a thread count on the development VM.
"""

from __future__ import annotations

import os
import socket
import threading
import time
from collections.abc import Sequence

import numpy as np

from mpibench.affinity import format_cpu_list
from mpibench.metadata import last_level_cache_bytes, meminfo_bytes
from mpibench.protocol import Bandwidth
from mpibench.stats import CV_LIMIT, describe

METHOD = "numpy-sum-f64"
LLC_FACTOR = 4  # the working set is at least this many times the last-level cache ...
MIN_WORKING_SET = 256 * 2**20  # ... and at least this
MEMORY_SHARE = 8  # ... and at most this share of the node's memory (1/8)
WINDOW = 5  # passes the figure is the median of
MAX_PASSES = 50
MAX_SECONDS = 3.0  # per thread count, whatever the passes
ITEM = np.dtype(np.float64).itemsize


class ProbeError(RuntimeError):
    """The probe could not run (a core it may not use, memory it cannot get); the message says why."""


def working_set_bytes(llc_bytes: int, memory_bytes: int) -> int:
    """Bytes a pass reads: LLC_FACTOR x the last-level cache, at least MIN_WORKING_SET, at most 1/MEMORY_SHARE of
    memory (0 when unknown: no cap)."""
    size = max(LLC_FACTOR * llc_bytes, MIN_WORKING_SET)
    return min(size, memory_bytes // MEMORY_SHARE) if memory_bytes else size


def settled(samples: Sequence[float], started: float, now: float) -> bool:
    """Whether to stop: the last WINDOW passes vary under CV_LIMIT, or MAX_PASSES or MAX_SECONDS are spent."""
    if len(samples) >= MAX_PASSES or now - started >= MAX_SECONDS:
        return True
    return len(samples) >= WINDOW and describe(samples[-WINDOW:]).cv < CV_LIMIT


class _Readers:
    """One thread pinned to each core, each summing its own slice; the passes run in lock step."""

    def __init__(self, cores: tuple[int, ...], elements: int):
        self.begin, self.end = threading.Barrier(len(cores) + 1), threading.Barrier(len(cores) + 1)
        self.times = [(0.0, 0.0)] * len(cores)
        self.stop, self.error = False, ""
        self.threads = [threading.Thread(target=self._read, args=(i, core, elements), daemon=True)
                        for i, core in enumerate(cores)]
        for thread in self.threads:
            thread.start()

    def _read(self, i: int, core: int, elements: int) -> None:
        try:
            os.sched_setaffinity(0, {core})  # this thread only (Linux)
            data = np.ones(elements)  # allocated and first touched on its own core
            while True:
                self.begin.wait()
                if self.stop:
                    return
                start = time.perf_counter()
                data.sum()
                self.times[i] = (start, time.perf_counter())
                self.end.wait()
        except threading.BrokenBarrierError:
            return
        except (OSError, MemoryError) as error:
            self.error = f"CPU {core}: {error}"
            self.begin.abort()
            self.end.abort()

    def timed_pass(self) -> float:
        """Seconds from the first thread's start to the last one's end."""
        try:
            self.begin.wait()
            self.end.wait()
        except threading.BrokenBarrierError:
            raise ProbeError(f"the read-bandwidth probe failed on {self.error or 'a reader thread'}") from None
        return max(end for _, end in self.times) - min(start for start, _ in self.times)

    def close(self) -> None:
        self.stop = True
        try:
            self.begin.wait()
        except threading.BrokenBarrierError:
            pass
        for thread in self.threads:
            thread.join()


def measure(cores: tuple[int, ...], working_set: int, hostname: str) -> Bandwidth:
    """The read bandwidth of `cores`, one thread each, over `working_set` bytes split between them."""
    elements = working_set // len(cores) // ITEM
    nbytes = elements * ITEM * len(cores)
    readers = _Readers(cores, elements)
    samples: list[float] = []
    try:
        readers.timed_pass()  # untimed: waits for every slice to be allocated, and warms up
        started = time.monotonic()
        while not samples or not settled(samples, started, time.monotonic()):
            samples.append(nbytes / readers.timed_pass() / 1e9)
    finally:
        readers.close()
    window = describe(samples[-WINDOW:])
    return Bandwidth(hostname=hostname, threads=len(cores), cores=format_cpu_list(cores), gb_per_s=window.median,
                     repeats=len(samples), cv=window.cv, method=METHOD, working_set_bytes=nbytes,
                     probed_unix=time.time())


def probe(core_sets: Sequence[tuple[int, ...]]) -> list[Bandwidth]:
    """This node's read bandwidth on each set of cores (a thread count's), one row each."""
    working_set = working_set_bytes(last_level_cache_bytes(), meminfo_bytes("MemTotal"))
    hostname = socket.gethostname()
    return [measure(tuple(cores), working_set, hostname) for cores in core_sets]
