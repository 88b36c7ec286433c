"""The only module that imports mpi4py: transport between rank 0 and the workers (protocol.py's messages).

Nothing here blocks in an MPI call while waiting: a blocking receive spins a core at 100 %, which
would steal the very cores being measured. Waits poll with Iprobe and a sleep that backs off to 50 ms.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable

import mpi4py

from mpibench import launcher
from mpibench.polling import Backoff
from mpibench.protocol import Job, Stop, TaskReply

mpi4py.rc.initialize = False  # comm_world() starts MPI, once the launcher is known to suit this MPI
mpi4py.rc.finalize = True
from mpi4py import MPI  # noqa: E402

TAG_JOB, TAG_RESULT, TAG_STOP = 11, 12, 13


def comm_world():
    """MPI_COMM_WORLD; the first call starts MPI, after checking that the launcher can start this MPI's ranks."""
    if not MPI.Is_initialized():
        launcher.check_library(MPI.Get_library_version())
        MPI.Init_thread(MPI.THREAD_MULTIPLE)
    return MPI.COMM_WORLD


def library_version() -> str:
    return MPI.Get_library_version().replace("\x00", "").strip().splitlines()[0]


def node_leader(comm) -> int:
    """The lowest world rank on this rank's node, as MPI sees nodes (the node-local communicator)."""
    local = comm.Split_type(MPI.COMM_TYPE_SHARED, key=comm.rank)
    try:
        return local.allreduce(comm.rank, op=MPI.MIN)
    finally:
        local.Free()


def gather(comm, value):
    return comm.gather(value, root=0)


def abort(comm, code: int) -> None:
    comm.Abort(code)


PROBE_BURST = 8


def probe(comm, source: int, tag: int, status) -> bool:
    """Iprobe a few times in a row (under a microsecond each): a message takes several progress steps to
    arrive, and between sleeps one probe a wakeup would add a whole sleep per step to its latency."""
    return any(comm.Iprobe(source=source, tag=tag, status=status) for _ in range(PROBE_BURST))


class WorkerChannel:
    """A worker's side: receive jobs and stops from rank 0 (polling, not spinning), send task replies."""

    def __init__(self, comm):
        self.comm, self.status = comm, MPI.Status()

    def receive(self, wait: bool = True, within: float | None = None) -> Job | Stop | None:
        """The next message from rank 0; None when there is none yet (`wait` False) or `within` seconds
        pass first."""
        backoff = Backoff()
        end = None if within is None else time.monotonic() + within
        while not probe(self.comm, 0, MPI.ANY_TAG, self.status):
            if not wait or (end is not None and time.monotonic() > end):
                return None
            backoff.sleep()
        return self.comm.recv(source=0, tag=self.status.Get_tag())

    def send(self, reply: TaskReply) -> None:
        self.comm.send(reply, dest=0, tag=TAG_RESULT)


class MpiTransport:
    """Rank 0's side: send jobs and stops to workers, poll for their replies."""

    def __init__(self, comm):
        self.comm, self.status = comm, MPI.Status()

    def send_job(self, rank: int, job: Job) -> None:
        self.comm.send(job, dest=rank, tag=TAG_JOB)

    def poll(self) -> tuple[int, TaskReply] | None:
        if not probe(self.comm, MPI.ANY_SOURCE, TAG_RESULT, self.status):
            return None
        source = self.status.Get_source()
        return source, self.comm.recv(source=source, tag=TAG_RESULT)

    def stop(self, rank: int, code: int) -> None:
        self.comm.send(Stop(code), dest=rank, tag=TAG_STOP)


class LocalTransport:
    """Rank 0 alone (-n 1): jobs run in this process, one at a time."""

    def __init__(self, execute: Callable[[Job], TaskReply]):
        self.execute = execute
        self.done: deque[tuple[int, TaskReply]] = deque()

    def send_job(self, rank: int, job: Job) -> None:
        self.done.append((rank, self.execute(job)))

    def poll(self) -> tuple[int, TaskReply] | None:
        return self.done.popleft() if self.done else None

    def stop(self, rank: int, code: int) -> None:
        pass
