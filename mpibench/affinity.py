"""CPU lists: parsing and formatting, physical-first core order, and the environment of a pinned runner."""

from __future__ import annotations

from collections.abc import Iterable, Mapping


def parse_cpu_list(text: str) -> tuple[int, ...]:
    """'0-3,8,10-11' -> (0, 1, 2, 3, 8, 10, 11), the Linux cpulist format."""
    cpus: set[int] = set()
    for part in filter(None, (p.strip() for p in text.split(","))):
        first, _, last = part.partition("-")
        if not first.isdigit() or (last and not last.isdigit()):
            raise ValueError(f"not a CPU list: {text!r}")
        cpus.update(range(int(first), int(last or first) + 1))
    return tuple(sorted(cpus))


def format_cpu_list(cpus: Iterable[int]) -> str:
    """(0, 1, 2, 3, 8) -> '0-3,8'."""
    ordered = sorted(set(cpus))
    parts: list[str] = []
    start = prev = None
    for cpu in ordered + [None]:
        if start is not None and (cpu is None or cpu != prev + 1):
            parts.append(str(start) if start == prev else f"{start}-{prev}")
            start = None
        if cpu is not None and start is None:
            start = cpu
        prev = cpu
    return ",".join(parts)


def physical_first(cpus: Iterable[int], siblings: Mapping[int, tuple[int, ...]]) -> tuple[int, ...]:
    """Order CPUs so that one hardware thread of every physical core comes before any SMT sibling.

    `siblings` maps a CPU to all CPUs of its physical core (itself included); missing CPUs count as
    cores of their own.
    """
    available = sorted(set(cpus))
    first, rest = [], []
    for cpu in available:
        core = [c for c in siblings.get(cpu, (cpu,)) if c in available]
        (first if cpu == min(core, default=cpu) else rest).append(cpu)
    return tuple(first + rest)


def runner_environment(cores: tuple[int, ...], base: Mapping[str, str]) -> dict[str, str]:
    """Environment that makes OpenMP (llama.cpp's thread pool) use exactly `cores`, one thread per core."""
    env = dict(base)
    env.update(
        OMP_NUM_THREADS=str(len(cores)),
        OMP_PROC_BIND="close",
        OMP_PLACES=",".join(f"{{{c}}}" for c in cores),
    )
    return env
