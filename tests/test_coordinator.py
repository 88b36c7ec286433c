"""Rank 0's loop with an in-process transport whose workers answer as told (pure logic, no MPI)."""

from collections import deque
from itertools import accumulate

import pytest

from mpibench.config import build_config
from mpibench.coordinator import FED_POLL_S, RESULT_POLL_S, coordinate, drain, probe_nodes
from mpibench.deadline import FIRST_TASK_S, MIN_TASK_S, task_limit, worker_silence_limit
from mpibench.progress import Progress
from mpibench.scheduler import Scheduler
from mpibench.protocol import ProbeReply, ProbeRequest, Result, TaskReply, result_row
from mpibench.store.journal import latest_records
from mpibench.tasks import expand


class Transport:
    """Delivers each job's result at once, as `answer(rank, job)` decides (None: the worker stays silent)."""

    def __init__(self, answer):
        self.answer, self.inbox, self.sent = answer, deque(), []

    def send_job(self, rank, job):
        self.sent.append((rank, job))
        record = self.answer(rank, job)
        if record is not None:
            self.inbox.append((rank, record))

    def poll(self):
        return self.inbox.popleft() if self.inbox else None


def ok(rank, job, model_failed=False, **fields):
    task = job.task
    fields = {"status": "ok", **fields}
    return TaskReply(Result(task_id=task.id, index=task.index, model=task.model, rank=rank, **fields), model_failed)


class Clock:
    def __init__(self):
        self.now = 0.0

    def __call__(self):
        self.now += 1.0
        return self.now


def run(tasks, workers, answer, silence=1e9):
    stored = []
    scheduler = Scheduler(tasks, workers, {"n1": (0, 1), "n2": (0, 1)})
    outcome = coordinate(scheduler, lambda a: a, Transport(answer), lambda r: stored.append(result_row(r)),
                         Progress(len(tasks)), silence, clock=Clock())
    return outcome, stored


def test_every_task_is_stored_once():
    tasks = expand(build_config("", {"models": "a.gguf,b.gguf"}), (1, 2))
    outcome, stored = run(tasks, {1: "n1", 2: "n2"}, ok)
    assert sorted(r["task_id"] for r in stored) == sorted(t.id for t in tasks)
    assert (outcome.done, outcome.failed, outcome.lost_ranks) == (len(tasks), 0, [])


def test_a_model_that_cannot_load_is_not_loaded_again():
    tasks = expand(build_config("", {"models": "bad.gguf,good.gguf"}), (1,))

    def answer(rank, job):
        if job.task.model == "bad":
            return ok(rank, job, model_failed=True, status="failed", error="model failed to load: boom")
        return ok(rank, job)

    transport_jobs = []
    outcome, stored = run(tasks, {1: "n1"}, lambda r, j: transport_jobs.append(j) or answer(r, j))
    bad = [r for r in stored if r["model"] == "bad"]
    assert len(bad) == 5 and sum(j.task.model == "bad" for j in transport_jobs) == 1
    assert all(r["error"] == "not run: model failed to load: boom" for r in bad[1:])
    assert all(r["status"] == "ok" for r in stored if r["model"] == "good")


def test_a_silent_worker_is_lost_and_the_others_finish():
    tasks = expand(build_config(""), (1,))
    outcome, stored = run(tasks, {1: "n1", 2: "n2"}, lambda rank, job: None if rank == 1 else ok(rank, job), silence=5)
    assert outcome.lost_ranks == [1]
    assert sorted(r["task_id"] for r in stored) == sorted(t.id for t in tasks)
    (lost,) = [r for r in stored if r["status"] != "ok"]
    assert lost["rank"] == 1 and "stopped answering" in lost["error"]


def test_losing_the_only_node_that_fits_fails_what_is_left():
    tasks = expand(build_config(""), (1,))
    outcome, stored = run(tasks, {1: "n1"}, lambda rank, job: None, silence=5)
    assert outcome.lost_ranks == [1] and len(stored) == len(tasks)
    assert sum("not run: no remaining worker node" in r["error"] for r in stored) == len(tasks) - 1


def test_drain_keeps_what_is_already_on_its_way():
    transport = Transport(ok)
    tasks = expand(build_config(""), (1,))
    for assignment in Scheduler(tasks[:2], {1: "n1", 2: "n2"}, {"n1": (0,), "n2": (0,)}).assign():
        transport.send_job(assignment.rank, assignment)
    kept = []
    assert drain(transport, kept.append, seconds=3, clock=Clock()) == 2 and len(kept) == 2


def test_probe_nodes_collects_rows_and_names_the_nodes_without():
    def answer(rank, request):
        cores = request.core_sets
        return {1: ProbeReply(("row of n1 at", cores)), 2: ProbeReply(error="CPU 7: Invalid argument")}.get(rank)

    requests = {rank: (f"n{rank}", ProbeRequest(((0,), (0, 1)))) for rank in (1, 2, 3)}
    rows, problems = probe_nodes(Transport(answer), requests, limit=10, clock=Clock(), sleep=lambda s: None)
    assert rows == ["row of n1 at", ((0,), (0, 1))]
    assert problems == ["n2: CPU 7: Invalid argument", "n3: its bandwidth probe did not answer within 10 s"]


def test_a_late_probe_reply_does_not_disturb_the_tasks():
    def answer(rank, job):
        return ok(rank, job)

    transport = Transport(answer)
    transport.inbox.append((1, ProbeReply()))  # came after probe_nodes gave up on its node
    tasks = expand(build_config(""), (1,))[:2]
    stored = []
    outcome = coordinate(Scheduler(tasks, {1: "n1"}, {"n1": (0,)}), lambda a: a, transport, stored.append,
                         Progress(2), 1e9, clock=Clock())
    assert outcome.done == 2 and len(stored) == 2


def test_latest_journal_record_of_a_task_wins():
    first, second = {"task_id": "a", "status": "failed"}, {"task_id": "a", "status": "ok"}
    assert latest_records([first, {"task_id": "b"}, second]) == [second, {"task_id": "b"}]


def test_time_limits():
    assert task_limit(5.0, None, 100) == 5.0
    assert task_limit(None, None, 100) == FIRST_TASK_S
    previous = Result(ttft_s=1.0, tpot_s=0.5, e2e_s=10.0)
    assert task_limit(None, previous, 100) == pytest.approx(10 * (1.0 + 50))
    assert task_limit(None, Result(ttft_s=0.01, tpot_s=0.001, e2e_s=0.1), 10) == MIN_TASK_S
    assert task_limit(None, Result(), 10) == FIRST_TASK_S
    assert worker_silence_limit(10.0) == 30.0


class Timed:
    """Simulated time: each job's result arrives `seconds` after it was sent; sleeping advances the clock."""

    def __init__(self, seconds: float):
        self.now, self.seconds, self.running, self.sleeps, self.free_at = 0.0, seconds, [], [], {}

    def clock(self):
        return self.now

    def sleep(self, seconds):
        self.sleeps.append(seconds)
        self.now += seconds

    def send_job(self, rank, job):  # a worker runs its jobs one after another
        self.free_at[rank] = max(self.now, self.free_at.get(rank, 0.0)) + self.seconds
        self.running.append((self.free_at[rank], rank, job))

    def poll(self):
        for item in self.running:
            if item[0] <= self.now:
                self.running.remove(item)
                return item[1], ok(item[1], item[2])
        return None


def test_rank_0_sleeps_through_a_task_it_has_seen_before_instead_of_polling():
    tasks = expand(build_config("", {"prompts": "pi", "repetitions": 3}), (1,))
    timed = Timed(seconds=2.0)
    coordinate(Scheduler(tasks, {1: "n1"}, {"n1": (0, 1)}), lambda a: a, timed, [].append,
               Progress(len(tasks)), 1e9, clock=timed.clock, sleep=timed.sleep)
    long_sleeps = [s for s in timed.sleeps if s > 1.0]
    assert len(long_sleeps) == 2 and all(s == pytest.approx(0.85 * 2.0, abs=0.02) for s in long_sleeps)
    assert max(s for s in timed.sleeps if s <= 1.0) <= FED_POLL_S  # otherwise it polls
    assert len(timed.sleeps) < 300  # polling all three tasks through would take about 600 sleeps


@pytest.mark.parametrize("seconds", [2.0, 0.04])
def test_rank_0_polls_less_while_every_worker_holds_its_next_task(seconds):
    tasks = expand(build_config("", {"repetitions": 1}), (1,))  # five different prompts: nothing to sleep through
    timed = Timed(seconds=seconds)
    coordinate(Scheduler(tasks, {1: "n1"}, {"n1": (0, 1)}), lambda a: a, timed, [].append,
               Progress(len(tasks)), 1e9, clock=timed.clock, sleep=timed.sleep)
    first = [s for s, at in zip(timed.sleeps, accumulate(timed.sleeps)) if at <= seconds]
    assert max(first) <= RESULT_POLL_S  # the first task: nothing handed ahead yet, the node may wait on rank 0
    # then the worker always holds its next task: polls at most every 50 ms, and never less often than
    # twice per task, so that its queue is refilled before it runs dry
    if seconds > 2 * FED_POLL_S:
        assert max(timed.sleeps) == FED_POLL_S
        assert len(timed.sleeps) < 600  # at 10 ms throughout: 1000; the three fed tasks take about 40 each
    else:  # half the shortest round trip seen (the task and the poll that found its result)
        assert RESULT_POLL_S < max(timed.sleeps) <= 0.6 * seconds
