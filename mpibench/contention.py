"""Other work on a task's pinned cores: how busy they were with anything but the task's runner.

A runner reads /proc/stat's per-CPU times for its pinned cores before and after a task. The cores' busy
time (user, nice, system, irq, softirq) minus the runner's own CPU time (getrusage) is what other
processes used of them; their steal time is what the hypervisor gave to other guests. Both come in clock
ticks (1/SC_CLK_TCK s, usually 10 ms), counted per core, so a task is flagged `contended` only when that
other work is both more than CONTENDED_SHARE of its cores' time and more than two ticks a core: a short
task cannot be flagged by the rounding of its ticks alone.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

TICK_S = 1 / os.sysconf("SC_CLK_TCK")
CONTENDED_SHARE = 0.10  # others took more than 10 % of the pinned cores' time during the task
ROUNDING_TICKS = 2  # ... and more than this many clock ticks a core
BUSY_FIELDS = (0, 1, 2, 5, 6)  # user nice system idle iowait irq softirq steal: the busy ones
STEAL_FIELD = 7
EXCLUDE_HELP = "leave the runs flagged contended (their cores did other work) out of every statistic"


@dataclass(frozen=True)
class CoreTimes:
    """Seconds the given CPUs spent busy and stolen, summed over them, since boot."""

    busy_s: float
    steal_s: float


def core_times(proc_stat: str, cpus) -> CoreTimes:
    """The summed busy and steal seconds of `cpus` from /proc/stat's text."""
    wanted, busy, steal = {f"cpu{c}" for c in cpus}, 0, 0
    for line in proc_stat.splitlines():
        name, *fields = line.split()
        if name in wanted:
            ticks = [int(f) for f in fields]
            busy += sum(ticks[i] for i in BUSY_FIELDS)
            steal += ticks[STEAL_FIELD] if len(ticks) > STEAL_FIELD else 0
    return CoreTimes(busy * TICK_S, steal * TICK_S)


def read_core_times(cpus) -> CoreTimes:
    return core_times(Path("/proc/stat").read_text(), cpus)


@dataclass(frozen=True)
class Contention:
    """What other work took from a task's cores: CPU seconds of other processes, stolen seconds, their
    share of the cores' time over the task, and whether that makes it `contended` (1) or not (0)."""

    other_cpu_s: float
    steal_s: float
    contention_share: float
    contended: int


def assess(before: CoreTimes, after: CoreTimes, own_cpu_s: float, seconds: float, cores: int) -> Contention:
    """Contention over a task of `seconds` on `cores` cores whose runner used `own_cpu_s` CPU seconds."""
    other = max(0.0, after.busy_s - before.busy_s - own_cpu_s)
    steal = max(0.0, after.steal_s - before.steal_s)
    share = (other + steal) / (seconds * cores) if seconds > 0 and cores > 0 else 0.0
    flagged = share > CONTENDED_SHARE and other + steal > ROUNDING_TICKS * TICK_S * cores
    return Contention(other, steal, share, int(flagged))
