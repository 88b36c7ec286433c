"""The load generator's dispatch loop (mpibench/load/generator.py), on a fake clock with in-memory runners, and
for a few seconds on real pipes with child-process runners."""

import gc
import os
import time
from pathlib import Path

import pytest

from load_fakes import NS, FakeRunner, Script, SimClock, SimRunner, fake_point
from mpibench.load.generator import run_point
from mpibench.protocol import FAILED, NOT_RUN, OK, LoadShape, Phases, Workload

PROMPTS = Workload("prompts", prompts=(("a", "first?"), ("b", "second?"), ("c", "third?")), max_tokens=4)


def point(shape, phases=Phases(duration_s=10, drain_s=30), workload=PROMPTS, runners=1, slots=1):
    return fake_point(shape, phases, workload, runners, slots)


def simulate(load_point, scripts, slots=1):
    """Run a point on a fake clock against one SimRunner per script; the reply, the clock and the runners."""
    clock = SimClock()
    runners = [SimRunner(clock, script, slots) for script in scripts]
    return run_point(load_point, runners, clock=clock, wait=clock.wait), clock, runners


def most_at_once(intervals):
    """The most intervals [start, end) overlapping at one time."""
    changes = sorted([(s, 1) for s, _ in intervals] + [(e, -1) for _, e in intervals])
    most = now = 0
    for _, step in changes:
        now += step
        most = max(most, now)
    return most


def test_closed_loop_users_never_exceed_their_number_and_think_between_requests():
    shape = LoadShape("closed", users=3, think="constant", think_s=0.5)
    reply, _, runners = simulate(point(shape, Phases(ramp_up_s=1.5, duration_s=20)), [Script(0.2)] * 2, slots=2)
    requests = reply.requests
    assert all(r.status == OK for r in requests) and len(requests) > 60
    assert most_at_once([(r.intended_ns, r.end_ns) for r in requests]) <= 3
    assert sum(runner.peak for runner in runners) <= 3
    for user in range(3):
        mine = [r for r in requests if r.user == user]
        assert mine[0].intended_ns == user * NS // 2  # spread over the 1.5 s ramp
        assert all(b.intended_ns == a.end_ns + NS // 2 for a, b in zip(mine, mine[1:]))
    assert {r.user for r in requests} == {0, 1, 2}
    assert max(r.intended_ns for r in requests) < 21.5 * NS  # nothing new after cool-down (no cool-down here)


def test_requests_carry_their_times_relative_to_t0_and_their_prompt():
    reply, _, runners = simulate(point(LoadShape("open", rate=2, arrivals="constant")), [Script(0.1)])
    first = reply.requests[0]
    assert (first.intended_ns, first.dispatch_ns, first.admit_ns) == (NS // 2,) * 3  # fake clock: no lag
    assert first.token_ns == tuple(NS // 2 + k * NS // 40 for k in range(1, 5))
    assert (first.first_token_ns, first.end_ns, first.generated_tokens) == (first.token_ns[0], first.token_ns[-1], 4)
    assert [r.prompt_id for r in reply.requests[:4]] == ["a", "b", "c", "a"]
    assert [s.prompt for s in runners[0].submitted[:2]] == ["first?", "second?"]
    assert runners[0].submitted[0].max_tokens == 4 and not runners[0].submitted[0].ignore_eos
    assert (reply.index, len(reply.requests), reply.ended_ns) == (3, 19, reply.requests[-1].end_ns)
    assert reply.generator_cpu_s > 0


def test_fixed_workload_submits_random_tokens_with_eos_ignored():
    fixed = Workload("fixed", prompt_tokens=32, gen_tokens=8)
    _, _, runners = simulate(point(LoadShape("open", rate=1, arrivals="constant"), workload=fixed), [Script(0.1)])
    sent = runners[0].submitted[0]
    assert (sent.prompt, sent.prompt_tokens, sent.max_tokens, sent.ignore_eos) == ("", 32, 8, True)


def test_open_loop_queues_when_slots_are_full_and_latency_counts_from_the_intended_start():
    """Arrivals every 0.5 s, service 1 s, one slot: the n-th request waits n * 0.5 s in the queue."""
    reply, _, _ = simulate(point(LoadShape("open", rate=2, arrivals="constant"), Phases(duration_s=5)), [Script(1.0)])
    requests = reply.requests
    assert all(r.status == OK for r in requests) and len(requests) == 9
    assert [(r.admit_ns - r.intended_ns) / NS for r in requests] == [0.5 * n for n in range(9)]
    assert all(r.dispatch_ns == r.intended_ns for r in requests)  # issued on time, queued in the generator
    assert [r.end_ns - r.intended_ns for r in requests] == [NS + n * NS // 2 for n in range(9)]


def test_the_least_busy_runner_takes_the_next_request():
    shape = LoadShape("open", rate=10, arrivals="constant")
    reply, _, runners = simulate(point(shape, Phases(duration_s=1)), [Script(5.0)] * 3, slots=2)
    assert [r.runner for r in reply.requests[:6]] == [0, 1, 2, 0, 1, 2]
    assert all(r.admit_ns == 5 * NS + r.intended_ns - 6 * NS // 10 for r in reply.requests[6:])  # waited
    assert [runner.peak for runner in runners] == [2, 2, 2]


def test_max_concurrency_caps_requests_in_the_system():
    shape = LoadShape("open", rate=20, arrivals="poisson", max_concurrency=3)
    reply, _, runners = simulate(point(shape, Phases(duration_s=20)), [Script(0.3, exponential=True)] * 2, slots=4)
    requests = reply.requests
    assert all(r.status == OK for r in requests)
    assert most_at_once([(r.admit_ns, r.end_ns) for r in requests]) == 3
    assert sum(r.admit_ns - r.intended_ns > 0 for r in requests) > len(requests) / 2  # they waited for the cap


def test_phases_label_requests_and_arrivals_stop_after_cooldown():
    phases = Phases(ramp_up_s=2, warmup_s=1, duration_s=4, cooldown_s=1, drain_s=5)
    reply, _, _ = simulate(point(LoadShape("open", rate=10, arrivals="constant"), phases), [Script(0.01)])
    by_phase = {}
    for r in reply.requests:
        by_phase.setdefault(r.phase, []).append(r.intended_ns)
    assert list(by_phase) == ["ramp_up", "warmup", "steady", "cooldown"]
    assert (len(by_phase["warmup"]), len(by_phase["steady"]), len(by_phase["cooldown"])) == (10, 40, 10)
    assert len(by_phase["ramp_up"]) == 9  # L(2 s) = 10, the 10th arrival at 2 s exactly
    assert max(by_phase["cooldown"]) < 8 * NS and all(r.status == OK for r in reply.requests)


def test_the_drain_ends_the_point_unfinished_requests_failed_and_queued_ones_not_run():
    """One slot, service 3 s, arrivals at 1, 2 and 3 s, then a 2 s drain from 4 s: the first ends at 4 s, the
    second is admitted then and cut at 6 s, the third never leaves the queue."""
    phases = Phases(duration_s=4, drain_s=2)
    reply, clock, runners = simulate(point(LoadShape("open", rate=1, arrivals="constant"), phases), [Script(3.0)])
    assert [r.status for r in reply.requests] == [OK, FAILED, NOT_RUN]
    assert reply.requests[1].error == "unfinished when the drain ended (2 s after cool-down)"
    assert reply.requests[2].error == "still queued when the drain ended"
    assert (reply.requests[2].dispatch_ns, reply.requests[2].admit_ns, reply.requests[2].runner) == (3 * NS, -1, -1)
    assert reply.ended_ns == 6 * NS


def test_requests_in_flight_finish_in_the_drain():
    reply, _, _ = simulate(point(LoadShape("open", rate=1, arrivals="constant"), Phases(duration_s=4)), [Script(3.0)])
    assert [r.status for r in reply.requests] == [OK] * 3
    assert reply.ended_ns == reply.requests[-1].end_ns == 10 * NS  # 1 + 3 x 3 s, past cool-down at 4 s


def test_a_dying_runner_fails_its_requests_and_the_others_go_on():
    clock_start = SimClock().ns
    dying = Script(1.0, die_ns=clock_start + round(2.5 * NS))
    shape = LoadShape("closed", users=2)
    reply, _, _ = simulate(point(shape, Phases(duration_s=6)), [dying, Script(1.0)])
    failed = [r for r in reply.requests if r.status == FAILED]
    assert len(failed) == 1 and failed[0].runner == 0
    assert failed[0].error == "runner 0 failed: runner killed by signal 9"
    assert failed[0].end_ns == round(2.5 * NS)
    later = [r for r in reply.requests if r.intended_ns > 2.5 * NS]
    assert later and all(r.runner == 1 and r.status == OK for r in later)  # both users go on with runner 1


def test_when_every_runner_dies_the_point_ends_and_the_queue_is_not_run():
    start = SimClock().ns
    scripts = [Script(1.0, die_ns=start + 2 * NS), Script(1.0, die_ns=start + 3 * NS)]
    reply, _, _ = simulate(point(LoadShape("open", rate=4, arrivals="constant"), Phases(duration_s=10)), scripts)
    statuses = [r.status for r in reply.requests]
    assert statuses.count(OK) == 3 and statuses.count(FAILED) == 2
    assert reply.ended_ns == reply.stopped_ns == 3 * NS and max(r.intended_ns for r in reply.requests) <= 3 * NS
    not_run = [r for r in reply.requests if r.status == NOT_RUN]
    assert not_run and {r.error for r in not_run} == {"not run: every runner failed"}


def test_a_runner_whose_pipe_is_closed_fails_at_submission():
    start = SimClock().ns
    scripts = [Script(0.1, die_ns=start + NS // 2), Script(0.1)]
    shape = LoadShape("open", rate=1, arrivals="constant")
    reply, _, runners = simulate(point(shape, Phases(duration_s=3)), scripts)
    assert [r.status for r in reply.requests] == [OK] * 2 and {r.runner for r in reply.requests} == {1}
    assert runners[0].submitted == []


def test_the_loop_waits_instead_of_spinning():
    """A wait per arrival and per answer, about: 100 requests in 10 s take ~200 waits, not millions."""
    reply, clock, _ = simulate(point(LoadShape("open", rate=10, arrivals="constant")), [Script(0.05)])
    assert len(reply.requests) == 99 and clock.waits <= 2 * len(reply.requests) + 2


def test_requests_due_when_answers_come_are_issued_before_the_answers_are_read():
    """Every answer (0.1 s service) comes just as the next request is due (10/s), and reading it takes 2 ms: the
    request is issued first, on time."""
    clock = SimClock()
    runner = SimRunner(clock, Script(0.1), call_ns=2_000_000)
    reply = run_point(point(LoadShape("open", rate=10, arrivals="constant"), Phases(duration_s=2)), [runner],
                      clock=clock, wait=clock.wait)
    assert len(reply.requests) == 19 and all(r.status == OK for r in reply.requests)
    assert [r.dispatch_ns for r in reply.requests] == [r.intended_ns for r in reply.requests]


def test_time_spent_submitting_does_not_delay_the_next_deadline():
    """Submitting takes 3 ms and no answer comes within the point: each wait still ends at the next intended
    start, not 3 ms after it."""
    clock = SimClock()
    runner = SimRunner(clock, Script(5.0), slots=50, call_ns=3_000_000)
    reply = run_point(point(LoadShape("open", rate=10, arrivals="constant"), Phases(duration_s=2, drain_s=10),
                            slots=50), [runner], clock=clock, wait=clock.wait)
    assert len(reply.requests) == 19 and all(r.status == OK for r in reply.requests)
    assert [r.dispatch_ns for r in reply.requests] == [r.intended_ns for r in reply.requests]


def timer_slack_ns():
    """The main thread's timer slack (the tests call run_point on it)."""
    return int(Path("/proc/self/timerslack_ns").read_text())


@pytest.mark.parametrize("collecting", [True, False])
def test_the_point_runs_with_the_least_timer_slack_and_no_cyclic_gc_and_both_come_back(collecting):
    clock = SimClock()
    seen = set()

    def wait(runners, timeout_s):
        seen.add((timer_slack_ns(), gc.isenabled()))
        return clock.wait(runners, timeout_s)

    slack = timer_slack_ns()
    assert slack > 1  # the kernel's default (50 us)
    (gc.enable if collecting else gc.disable)()
    try:
        run_point(point(LoadShape("open", rate=10, arrivals="constant"), Phases(duration_s=1)),
                  [SimRunner(clock, Script(0.05))], clock=clock, wait=wait)
        assert seen == {(1, False)}
        assert (timer_slack_ns(), gc.isenabled()) == (slack, collecting)
    finally:
        gc.enable()


def test_a_later_t0_is_waited_for():
    clock = SimClock()
    runner = SimRunner(clock, Script(0.1))
    t0 = clock.ns + 5 * NS
    reply = run_point(point(LoadShape("open", rate=1, arrivals="constant"), Phases(duration_s=2)), [runner],
                      clock=clock, wait=clock.wait, t0_ns=t0)
    assert [r.intended_ns for r in reply.requests] == [NS]  # from t0
    assert clock.ns == t0 + round(1.1 * NS)


def test_a_short_real_run_on_pipes_with_child_runners():
    """Half a second at 100/s on two child-process runners (0.01 s each): every request served, issued within a
    few ms of its intended start (a loose bound: the machine may be busy), the thread's affinity restored."""
    before = os.sched_getaffinity(0)
    runners = [FakeRunner(Script(0.01), slots=2) for _ in range(2)]
    try:
        shape = LoadShape("open", rate=100, arrivals="poisson")
        reply = run_point(point(shape, Phases(duration_s=0.5, drain_s=5), runners=2, slots=2), runners)
    finally:
        for runner in runners:
            runner.close()
    assert os.sched_getaffinity(0) == before
    requests = reply.requests
    assert 25 < len(requests) < 85 and all(r.status == OK for r in requests)
    assert {r.runner for r in requests} == {0, 1}
    lags = sorted(r.dispatch_ns - r.intended_ns for r in requests)
    assert 0 <= lags[0] and lags[len(lags) // 2] < 20_000_000
    assert all(r.intended_ns <= r.admit_ns < r.first_token_ns <= r.end_ns for r in requests)
    assert all(r.end_ns - r.admit_ns >= 10_000_000 for r in requests)


def test_a_real_runner_that_dies_is_read_as_failed():
    dying = FakeRunner(Script(0.5, die_ns=time.monotonic_ns() + 200_000_000))
    try:
        reply = run_point(point(LoadShape("closed", users=1), Phases(duration_s=1, drain_s=2)), [dying])
    finally:
        dying.close()
    assert [r.status for r in reply.requests] == [FAILED, NOT_RUN]  # the user's next request: no runner left
    assert reply.requests[0].error == "runner 0 failed: runner exited with code 3"
    assert 150_000_000 < reply.requests[0].end_ns < 1_000_000_000


def test_a_bug_in_a_runner_handle_is_raised_not_read_as_a_dead_runner():
    """Only RunnerError and OSError mean a runner is gone; anything else is a bug and must not be swallowed."""
    class Buggy(SimRunner):
        def events(self):
            raise ValueError("a bug")

    clock = SimClock()
    with pytest.raises(ValueError, match="a bug"):
        run_point(point(LoadShape("open", rate=1, arrivals="constant"), Phases(duration_s=2)),
                  [Buggy(clock, Script(0.1))], clock=clock, wait=clock.wait)
