"""Rank 0's loop: hand tasks to free workers, collect results, store them, show progress.

A result is stored (journalled) before its task counts as done. A model that fails to load has its
remaining tasks recorded as not run instead of loading it again and again. A worker that stays silent
past `silence_limit` is counted as lost: its task in flight is recorded as failed and the others go on.

Rank 0 shares the node with the measurements, and every wakeup of it takes a core from them for a moment
(which a multi-threaded decode, waiting at barriers, feels more than its share). So while every running
task is one whose like (same model, threads and prompt) has run before, rank 0 sleeps through most of its
expected time in one go, and polls every few milliseconds only around its expected end.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

from mpibench.mpi import Backoff
from mpibench.progress import Progress
from mpibench.scheduler import Assignment, Scheduler
from mpibench.store.schema import empty_result
from mpibench.tasks import Task
from mpibench.worker import LOAD_FAILED


RESULT_POLL_S = 0.01  # rank 0 looks for results at least this often: a result waits at most 10 ms
QUIET_SHARE = 0.85  # of a task's expected time, rank 0 sleeps through this share without polling


@dataclass
class Outcome:
    done: int = 0
    failed: int = 0
    lost_ranks: list[int] = field(default_factory=list)


def unrun_record(task: Task, error: str, rank: int = -1, hostname: str = "") -> dict:
    """The record of a task that did not run (or whose worker vanished), with the reason."""
    return empty_result(task_id=task.id, index=task.index, kind=task.kind, model=task.model,
                        prompt_id=task.prompt_id, threads=task.threads, repetition=task.repetition,
                        warmup=int(task.warmup), rank=rank, hostname=hostname,
                        status="failed", error=error, answer="", token_ns=[])


def coordinate(
    scheduler: Scheduler,
    make_job: Callable[[Assignment], dict],
    transport,
    store_result: Callable[[dict], None],
    progress: Progress,
    silence_limit: float,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
) -> Outcome:
    """Run every task once; returns the counts and the ranks lost on the way."""
    backoff = Backoff(longest=RESULT_POLL_S, sleep=sleep)
    outcome = Outcome()
    sent_at: dict[int, float] = {}
    expected: dict[tuple, float] = {}  # (model, threads, prompt) -> round trip of its last success
    quiet_until: dict[int, float | None] = {}  # rank -> when to start polling for its result

    def like(task: Task) -> tuple:
        return (task.model, task.threads, task.prompt_id)

    def store(record: dict) -> None:
        store_result(record)
        outcome.done += 1
        outcome.failed += record["status"] != "ok"
        progress.update(outcome.done, outcome.failed)

    changed = True  # only a finished or lost task frees a node: assign after those alone
    while not scheduler.done:
        if changed:
            for assignment in scheduler.assign():
                transport.send_job(assignment.rank, make_job(assignment))
                sent_at[assignment.rank] = clock()
                estimate = expected.get(like(assignment.task))
                quiet_until[assignment.rank] = None if estimate is None else sent_at[assignment.rank] + QUIET_SHARE * estimate
            changed = False
        message = transport.poll()
        if message is None:
            for rank, since in list(sent_at.items()):
                if clock() - since > silence_limit:
                    changed = True
                    del sent_at[rank]
                    outcome.lost_ranks.append(rank)
                    held, stuck = scheduler.lose_worker(rank)
                    if held:
                        store(unrun_record(held.task, f"worker rank {rank} on {held.node} stopped answering "
                                                      f"for {silence_limit:.0f} s", rank, held.node))
                    for task in stuck:
                        store(unrun_record(task, f"not run: no remaining worker node has {task.threads} cores"))
            quiet = [quiet_until.get(rank) for rank in sent_at]
            if quiet and None not in quiet and min(quiet) > clock():
                sleep(min(quiet) - clock())
            else:
                backoff.sleep()
            continue
        backoff.reset()
        changed = True
        rank, record = message
        if rank in outcome.lost_ranks:  # a late answer of a worker given up for lost: keep it, latest wins
            store_result(record)
            continue
        store(record)
        held = scheduler.complete(rank)
        if record["status"] == "ok":
            expected[like(held.task)] = clock() - sent_at[rank]
        del sent_at[rank]
        if record["error"].startswith(LOAD_FAILED):
            for task in scheduler.drop_model(record["model"]):
                store(unrun_record(task, f"not run: {record['error']}"))
    progress.finish()
    return outcome


def drain(transport, store_result: Callable[[dict], None], seconds: float, clock=time.monotonic) -> int:
    """Keep results that are already on their way (after an interrupt); returns how many arrived."""
    backoff, kept, end = Backoff(), 0, clock() + seconds
    while clock() < end:
        message = transport.poll()
        if message is None:
            backoff.sleep()
            continue
        store_result(message[1])
        kept += 1
    return kept
