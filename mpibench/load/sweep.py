"""The plan of a sweep (pure): which load a server configuration gets next, given its points so far.

1. Synchronous: one closed-loop user, no think time: the rate one request at a time sustains.
2. Saturation: a closed loop of SATURATION_USERS_PER_SLOT x the configuration's slots (P x S) users. With twice as
   many users as slots, a request always waits when a slot frees (one user resubmitting while another's request is
   being admitted), so no slot idles between requests and the completed rate is the configuration's capacity;
   more users would only lengthen the queue (closed loops cannot overload a server: each user waits for its end).
3. `rates` open-loop rates evenly spaced from the synchronous to the saturated completed rate, the last one the
   saturated rate itself: r_i = sync + i (saturated - sync) / rates, i = 1 .. rates.
The sweep stops early after an open-loop point whose queue keeps growing (stable = 0): every later rate is higher,
so its queue would grow too. It ends after its closed-loop points when the saturated rate is not above the
synchronous one (no rate lies between: the configuration gains nothing from concurrency) or either completed
nothing.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from mpibench.protocol import LoadShape, ServerConfig

SATURATION_USERS_PER_SLOT = 2


def sweep_rates(synchronous_rps: float, saturated_rps: float, rates: int) -> list[float]:
    """The open-loop rates between the synchronous and the saturated completed rates (none when the saturated rate
    is not above the synchronous one)."""
    if not (math.isfinite(synchronous_rps) and saturated_rps > synchronous_rps > 0):
        return []
    step = (saturated_rps - synchronous_rps) / rates
    return [synchronous_rps + i * step for i in range(1, rates + 1)]


def next_sweep_shape(config, server: ServerConfig, done: Sequence[dict]) -> LoadShape | None:
    """The next load of `server`'s sweep, given the load_points rows of its points so far in the order they ran
    (their mode, completed_rps and stable); None when the sweep is over. `config` is the load configuration: its
    sweep_rates rates, each its open_shape(rate) (the arrivals, gamma shape and concurrency cap asked)."""
    if not done:
        return LoadShape("closed", users=1)
    if len(done) == 1:
        return LoadShape("closed", users=SATURATION_USERS_PER_SLOT * server.partitions * server.slots)
    if done[-1]["mode"] == "open" and not done[-1]["stable"]:
        return None
    planned = sweep_rates(done[0]["completed_rps"], done[1]["completed_rps"], config.sweep_rates)
    step = len(done) - 2
    return config.open_shape(planned[step]) if step < len(planned) else None
