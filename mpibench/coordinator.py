"""Rank 0's loop: hand tasks to free workers, collect results, store them, show progress.

A result is stored (journalled) before its task counts as done. A model that fails to load has its
remaining tasks recorded as not run instead of loading it again and again. A worker that stays silent
past `silence_limit` is counted as lost: its task in flight is recorded as failed and the others go on.

Rank 0 shares the node with the measurements, and every wakeup of it takes a core from them for a moment
(which a multi-threaded decode, waiting at barriers, feels more than its share). So while every running
task is one whose like (same model, threads and prompt) has run before, rank 0 sleeps through most of its
expected time in one go, and polls every few milliseconds only around its expected end. While every
running worker already holds its next task, no node waits on rank 0, and it polls five times less often.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

from mpibench.polling import Backoff
from mpibench.progress import Progress
from mpibench.protocol import OK, Job, ProbeRequest, Result, TaskReply, unrun_result
from mpibench.scheduler import Assignment, Scheduler
from mpibench.tasks import Task


PROBE_LIMIT_S = 120.0  # how long rank 0 waits for the nodes' bandwidth probes (each takes seconds)
RESULT_POLL_S = 0.01  # rank 0 looks for results at least this often while a node may wait on it
FED_POLL_S = 0.05  # ... and this often while every running worker holds its next task (at most half the
# shortest task seen, so that a worker's queue never runs dry before rank 0 refills it)
QUIET_SHARE = 0.85  # of a task's expected time, rank 0 sleeps through this share without polling


@dataclass
class Outcome:
    done: int = 0
    failed: int = 0
    lost_ranks: list[int] = field(default_factory=list)


def coordinate(
    scheduler: Scheduler,
    make_job: Callable[[Assignment], Job],
    transport,
    store_result: Callable[[Result], None],
    progress: Progress,
    silence_limit: float,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
) -> Outcome:
    """Run every task once; returns the counts and the ranks lost on the way."""
    backoff = Backoff(longest=RESULT_POLL_S, sleep=sleep)
    outcome = Outcome()
    started_at: dict[int, float] = {}  # rank -> when its running task started (was sent, or its last one ended)
    expected: dict[tuple, float] = {}  # (model, threads, prompt) -> round trip of its last success
    quiet_until: dict[int, float | None] = {}  # rank -> when to start polling for its result

    def like(task: Task) -> tuple:
        return (task.model, task.threads, task.prompt_id)

    def started(rank: int) -> None:
        progress.running(scheduler.running[rank].task)
        started_at[rank] = clock()
        estimate = expected.get(like(scheduler.running[rank].task))
        quiet_until[rank] = None if estimate is None else started_at[rank] + QUIET_SHARE * estimate

    def store(result: Result) -> None:
        store_result(result)
        outcome.done += 1
        outcome.failed += result.status != OK
        progress.update(outcome.done, outcome.failed, result)

    changed = True  # only a finished or lost task frees a node or warms a worker: assign after those alone
    while not scheduler.done:
        if changed:
            for assignment in scheduler.assign():
                transport.send_job(assignment.rank, make_job(assignment))
                if scheduler.running[assignment.rank] is assignment:  # not one handed ahead
                    started(assignment.rank)
            changed = False
        message = transport.poll()
        if message is None:
            progress.tick()
            for rank, since in list(started_at.items()):
                if clock() - since > silence_limit:
                    changed = True
                    del started_at[rank]
                    outcome.lost_ranks.append(rank)
                    held, stuck = scheduler.lose_worker(rank)
                    if held:
                        store(unrun_result(held.task, f"worker rank {rank} on {held.node} stopped answering "
                                                      f"for {silence_limit:.0f} s", rank, held.node))
                    for task in stuck:
                        store(unrun_result(task, f"not run: no remaining worker node has {task.threads} cores"))
            quiet = [quiet_until.get(rank) for rank in started_at]
            if quiet and None not in quiet and min(quiet) > clock():
                sleep(max(0.0, min(min(quiet), progress.next_line_at) - clock()))
            else:
                fed = scheduler.fed and expected
                backoff.longest = max(RESULT_POLL_S, min(FED_POLL_S, min(expected.values()) / 2)) if fed \
                    else RESULT_POLL_S
                backoff.sleep()
            continue
        backoff.reset()
        rank, reply = message
        if not isinstance(reply, TaskReply):  # a bandwidth probe's reply that came after probe_nodes gave up
            continue
        result = reply.result
        running = scheduler.running.get(rank)
        if running is None or running.task.id != result.task_id:  # late: its worker was given up for lost
            store_result(result)  # keep it, latest wins
            continue
        changed = True
        store(result)
        held = scheduler.complete(rank, result.status == OK)
        if result.status == OK:
            expected[like(held.task)] = clock() - started_at[rank]
        if rank in scheduler.running:
            started(rank)
        else:
            del started_at[rank]
        if reply.model_failed:
            for task in scheduler.drop_model(result.model):
                store(unrun_result(task, f"not run: {result.error}"))
    progress.finish()
    return outcome


def probe_nodes(transport, requests: dict[int, tuple[str, ProbeRequest]], limit: float = PROBE_LIMIT_S,
                clock: Callable[[], float] = time.monotonic, sleep: Callable[[float], None] = time.sleep,
                ) -> tuple[list, list[str]]:
    """Before the first task: send each node's probe to its rank (rank -> (node, request)) and collect the
    bandwidth rows; returns them and a line for each node without (its probe failed or did not answer in time)."""
    for rank, (_, request) in requests.items():
        transport.send_job(rank, request)
    rows, problems, waiting = [], [], dict(requests)
    backoff, end = Backoff(sleep=sleep), clock() + limit
    while waiting and clock() < end:
        message = transport.poll()
        if message is None:
            backoff.sleep()
            continue
        rank, reply = message
        node, _ = waiting.pop(rank)
        rows += reply.rows
        if reply.error:
            problems.append(f"{node}: {reply.error}")
    problems += [f"{node}: its bandwidth probe did not answer within {limit:.0f} s" for node, _ in waiting.values()]
    return rows, problems


def drain(transport, store_result: Callable[[Result], None], seconds: float, clock=time.monotonic) -> int:
    """Keep results that are already on their way (after an interrupt); returns how many arrived."""
    backoff, kept, end = Backoff(), 0, clock() + seconds
    while clock() < end:
        message = transport.poll()
        if message is None:
            backoff.sleep()
            continue
        store_result(message[1].result)
        kept += 1
    return kept
