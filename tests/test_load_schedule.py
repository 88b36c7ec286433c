"""Arrival schedules, ramps, think times and phases (mpibench/load/schedule.py)."""

import statistics

import pytest

from mpibench.load import schedule
from mpibench.protocol import LoadShape, Phases

NS = schedule.NS


def open_loop(rate, arrivals="poisson", **shape):
    return LoadShape("open", rate=rate, arrivals=arrivals, **shape)


def gaps_s(times):
    return [(b - a) / NS for a, b in zip(times, times[1:])]


def test_constant_arrivals_are_evenly_spaced_until_the_end_of_cooldown():
    phases = Phases(warmup_s=1, duration_s=8, cooldown_s=1)
    times = list(schedule.arrivals(open_loop(4, "constant"), phases, seed=1))
    assert times == [k * NS // 4 for k in range(1, 40)]  # 0.25 s apart, the last before 10 s


@pytest.mark.parametrize("arrivals", ["poisson", "gamma"])
def test_random_arrivals_keep_their_rate(arrivals):
    times = list(schedule.arrivals(open_loop(1000, arrivals, gamma_shape=2.0), Phases(duration_s=20), seed=3))
    assert 19_400 < len(times) < 20_600  # 20000 expected; sd 141 (Poisson), 100 (gamma k=2)
    assert times == sorted(times) and times[-1] < 20 * NS


def test_a_seed_gives_the_same_schedule_and_another_seed_another():
    shape, phases = open_loop(50), Phases(duration_s=5)
    first = list(schedule.arrivals(shape, phases, seed=7))
    assert first == list(schedule.arrivals(shape, phases, seed=7))
    assert first != list(schedule.arrivals(shape, phases, seed=8))


@pytest.mark.parametrize("k", [0.25, 1.0, 4.0])
def test_gamma_gaps_have_cv_one_over_root_k(k):
    gaps = gaps_s(list(schedule.arrivals(open_loop(1000, "gamma", gamma_shape=k), Phases(duration_s=40), seed=2)))
    assert statistics.mean(gaps) == pytest.approx(1e-3, rel=0.03)
    assert statistics.stdev(gaps) / statistics.mean(gaps) == pytest.approx(k ** -0.5, rel=0.05)


def test_poisson_gaps_are_exponential():
    gaps = gaps_s(list(schedule.arrivals(open_loop(1000), Phases(duration_s=40), seed=4)))
    assert statistics.stdev(gaps) / statistics.mean(gaps) == pytest.approx(1.0, rel=0.03)
    # P(gap > mean) = 1/e for the exponential
    assert sum(g > 1e-3 for g in gaps) / len(gaps) == pytest.approx(0.3679, abs=0.01)


def test_the_ramp_rises_linearly_from_zero():
    """Constant arrivals over a 10 s ramp to 100/s: 500 arrivals in the ramp, at t = sqrt(2 R u / rate),
    so a quarter of them in its first half; then 100/s."""
    phases = Phases(ramp_up_s=10, duration_s=10)
    times = list(schedule.arrivals(open_loop(100, "constant"), phases, seed=0))
    in_ramp = [t for t in times if t < 10 * NS]
    assert len(in_ramp) == 499  # u = 1..499 below L(R) = 500 (u = 500 lands exactly on R)
    assert sum(t < 5 * NS for t in in_ramp) == 124  # L(5 s) = 125
    assert times[0] == round((2 * 10 * 1 / 100) ** 0.5 * NS)
    assert len(times) - len(in_ramp) == 1000


def test_open_loop_needs_a_rate_and_known_arrivals():
    with pytest.raises(ValueError, match="rate > 0"):
        next(schedule.arrivals(open_loop(0), Phases(), seed=0))
    with pytest.raises(ValueError, match="unknown arrivals 'burst'"):
        next(schedule.arrivals(open_loop(1, "burst"), Phases(), seed=0))


def test_users_start_spread_over_the_ramp():
    assert schedule.user_starts(4, Phases(ramp_up_s=2)) == (0, NS // 2, NS, 3 * NS // 2)
    assert schedule.user_starts(3, Phases()) == (0, 0, 0)


def test_think_times():
    def first(think, think_s, user=0, n=20000):
        times = schedule.think_times(LoadShape("closed", users=2, think=think, think_s=think_s), seed=5, user=user)
        return [next(times) for _ in range(n)]

    assert set(first("none", 3.0)) == {0}
    assert set(first("constant", 0.5)) == {NS // 2}
    exponential = first("exponential", 2.0)
    assert statistics.mean(exponential) / NS == pytest.approx(2.0, rel=0.03)
    assert statistics.stdev(exponential) / statistics.mean(exponential) == pytest.approx(1.0, rel=0.03)
    assert exponential != first("exponential", 2.0, user=1)  # each user its own stream
    assert exponential == first("exponential", 2.0)
    with pytest.raises(ValueError, match="unknown think time"):
        first("random", 1.0)


def test_phase_of_a_time():
    edges = schedule.bounds(Phases(ramp_up_s=1, warmup_s=2, duration_s=3, cooldown_s=4, drain_s=5))
    assert (edges.ramp_up, edges.warmup, edges.steady, edges.cooldown, edges.drain) == tuple(
        s * NS for s in (1, 3, 6, 10, 15))
    assert [schedule.phase_of(s * NS, edges) for s in (0, 1, 2.9, 3, 5.9, 6, 9.9, 10, 20)] == [
        "ramp_up", "warmup", "warmup", "steady", "steady", "cooldown", "cooldown", "drain", "drain"]
    no_ramp = schedule.bounds(Phases(duration_s=3))
    assert schedule.phase_of(0, no_ramp) == "steady"
