"""Host and software facts, read from /proc, /sys and package metadata (no subprocesses after MPI init)."""

from __future__ import annotations

import importlib.metadata
import os
import platform
import socket
from pathlib import Path

from mpibench import __version__
from mpibench.affinity import parse_cpu_list
from mpibench.simd import host_features

SYS_CPU = Path("/sys/devices/system/cpu")


def _read(path: Path | str, default: str = "") -> str:
    try:
        return Path(path).read_text().strip()
    except OSError:
        return default


def core_siblings(cpus) -> dict[int, tuple[int, ...]]:
    """Map each CPU to the CPUs of its physical core (SMT siblings), from sysfs."""
    siblings = {}
    for cpu in cpus:
        text = _read(SYS_CPU / f"cpu{cpu}/topology/thread_siblings_list")
        siblings[cpu] = parse_cpu_list(text) if text else (cpu,)
    return siblings


def _cpuinfo_model() -> str:
    for line in _read("/proc/cpuinfo").splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return platform.processor() or platform.machine()


def _cpu_flags() -> set[str]:
    """The CPU's feature flags: the "flags" line on x86, "Features" on ARM."""
    for line in _read("/proc/cpuinfo").splitlines():
        if line.startswith(("flags", "Features")):
            return set(line.split(":", 1)[1].split())
    return set()


def _mem_total_bytes() -> int:
    for line in _read("/proc/meminfo").splitlines():
        if line.startswith("MemTotal:"):
            return int(line.split()[1]) * 1024
    return 0


def host_facts() -> dict:
    """Facts about this node that explain its timings."""
    online = parse_cpu_list(_read(SYS_CPU / "online")) or tuple(range(os.cpu_count() or 1))
    cores = {core_siblings([c])[c] for c in online}
    return {
        "hostname": socket.gethostname(),
        "cpu_model": _cpuinfo_model(),
        "logical_cpus": len(online),
        "physical_cores": len(cores),
        "memory_bytes": _mem_total_bytes(),
        "kernel": platform.release(),
        "governor": _read(SYS_CPU / "cpu0/cpufreq/scaling_governor", "unknown"),
        "smt": _read(SYS_CPU / "smt/control", "unknown"),
        "simd": ",".join(host_features(_cpu_flags())),
    }


def rank_facts() -> dict:
    """What one MPI rank reports about itself: host, its CPU set and their cores, its node's facts."""
    cpus = tuple(sorted(os.sched_getaffinity(0)))
    return {"hostname": socket.gethostname(), "pid": os.getpid(), "cpus": cpus, "siblings": core_siblings(cpus),
            "host": host_facts()}


def software_versions() -> dict:
    """Versions of Python and the packages that shape the measurements."""
    versions = {"python": platform.python_version(), "mpibench": __version__}
    for package in ("llama-cpp-python", "mpi4py", "numpy", "h5py"):
        try:
            versions[package] = importlib.metadata.version(package)
        except importlib.metadata.PackageNotFoundError:
            versions[package] = "not installed"
    return versions
