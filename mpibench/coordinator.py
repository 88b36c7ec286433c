"""Rank 0's loop: hand tasks to free workers, collect results, store them, show progress."""

from __future__ import annotations

from collections.abc import Callable

from mpibench.mpi import Backoff
from mpibench.progress import Progress
from mpibench.scheduler import Assignment, Scheduler


def coordinate(
    scheduler: Scheduler,
    make_job: Callable[[Assignment], dict],
    transport,
    store_result: Callable[[dict], None],
    progress: Progress,
) -> tuple[int, int]:
    """Run every task once; returns (done, failed). A result is stored before its task counts as done."""
    backoff = Backoff()
    done = failed = 0
    while not scheduler.done:
        for assignment in scheduler.assign():
            transport.send_job(assignment.rank, make_job(assignment))
        message = transport.poll()
        if message is None:
            backoff.sleep()
            continue
        backoff.reset()
        rank, record = message
        store_result(record)
        scheduler.complete(rank)
        done += 1
        failed += record["status"] != "ok"
        progress.update(done, failed)
    progress.finish()
    return done, failed
