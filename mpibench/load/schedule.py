"""When a load point's requests are meant to start (pure, seeded): times in ns from the point's t0.

Open loop: the gaps of a unit-rate renewal process -- constant (every gap 1), Poisson (exponential gaps, mean 1)
or gamma (shape k, scale 1/k: mean 1, coefficient of variation 1/sqrt(k)) -- are summed to u and mapped through
the inverse of the cumulative rate L(t). Over the ramp-up R the rate rises linearly from 0 to `rate`, so
L(t) = rate t^2 / 2R there and rate (t - R/2) after: t = sqrt(2Ru / rate) for u <= rate R / 2, else u / rate + R/2.
Arrivals come lazily until the end of cool-down.

Closed loop: users start evenly spread over the ramp-up; after each answer a user thinks (none, a constant
think_s, or an exponential time of mean think_s) before sending its next request.

Every random stream is seeded from the point's seed and its purpose (arrivals, each user's think times), so a
schedule is the same on every run and every node.
"""

from __future__ import annotations

import math
import random
from collections.abc import Iterator
from dataclasses import dataclass

from mpibench.protocol import LoadShape, Phases

NS = 1_000_000_000
PHASES = ("ramp_up", "warmup", "steady", "cooldown")  # RequestRecord.phase values, in order
DRAIN = "drain"  # after cool-down: nothing new arrives


@dataclass(frozen=True)
class Bounds:
    """The ends of a point's phases in ns from t0: ramp-up, warm-up, steady window, cool-down (the end of arrivals)
    and the drain."""

    ramp_up: int
    warmup: int
    steady: int
    cooldown: int
    drain: int


def bounds(phases: Phases) -> Bounds:
    """The phases' ends, each the sum of the durations before it."""
    ends = []
    total = 0.0
    for seconds in (phases.ramp_up_s, phases.warmup_s, phases.duration_s, phases.cooldown_s, phases.drain_s):
        total += seconds
        ends.append(round(total * NS))
    return Bounds(*ends)


def phase_of(t_ns: int, edges: Bounds) -> str:
    """The phase a time from t0 lies in (a phase includes its start, not its end); past cool-down: DRAIN."""
    for name, end in zip(PHASES, (edges.ramp_up, edges.warmup, edges.steady, edges.cooldown)):
        if t_ns < end:
            return name
    return DRAIN


def _gaps(shape: LoadShape, rng: random.Random) -> Iterator[float]:
    """Unit-rate inter-arrival gaps (mean 1) of the shape's arrival process."""
    if shape.arrivals == "constant":
        while True:
            yield 1.0
    elif shape.arrivals == "poisson":
        while True:
            yield rng.expovariate(1.0)
    elif shape.arrivals == "gamma":
        if shape.gamma_shape <= 0:
            raise ValueError(f"gamma arrivals need a shape > 0, not {shape.gamma_shape:g}")
        while True:
            yield rng.gammavariate(shape.gamma_shape, 1.0 / shape.gamma_shape)
    else:
        raise ValueError(f"unknown arrivals {shape.arrivals!r}: use constant, poisson or gamma")


def arrivals(shape: LoadShape, phases: Phases, seed: int) -> Iterator[int]:
    """An open loop's intended starts, ascending, in ns from t0, until the end of cool-down."""
    if shape.rate <= 0:
        raise ValueError(f"an open loop needs a rate > 0 requests/s, not {shape.rate:g}")
    gaps = _gaps(shape, random.Random(f"{seed}/arrivals"))
    ramp, end = phases.ramp_up_s, bounds(phases).cooldown
    ramp_units = shape.rate * ramp / 2  # L(ramp)
    u = 0.0
    while True:
        u += next(gaps)
        t = math.sqrt(2 * ramp * u / shape.rate) if u <= ramp_units else u / shape.rate + ramp / 2
        t_ns = round(t * NS)
        if t_ns >= end:
            return
        yield t_ns


def user_starts(users: int, phases: Phases) -> tuple[int, ...]:
    """A closed loop's first request of each user, in ns from t0: user i at i / users of the ramp-up."""
    return tuple(round(i * phases.ramp_up_s / users * NS) for i in range(users))


def think_times(shape: LoadShape, seed: int, user: int) -> Iterator[int]:
    """A closed-loop user's think times in ns, one after each of its requests."""
    if shape.think == "none":
        while True:
            yield 0
    elif shape.think == "constant":
        while True:
            yield round(shape.think_s * NS)
    elif shape.think == "exponential":
        rng = random.Random(f"{seed}/think/{user}")
        while True:
            yield round(rng.expovariate(1.0 / shape.think_s) * NS) if shape.think_s > 0 else 0
    else:
        raise ValueError(f"unknown think time {shape.think!r}: use none, constant or exponential")
