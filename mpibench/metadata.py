"""Host and software facts, read from /proc, /sys and package metadata (no subprocesses after MPI init), and
the timestamp format of every run file."""

from __future__ import annotations

import importlib.metadata
import os
import platform
import socket
import time
from pathlib import Path

from mpibench import __version__
from mpibench.affinity import parse_cpu_list
from mpibench.simd import host_features

SYS_CPU = Path("/sys/devices/system/cpu")


def timestamp() -> str:
    """The one timestamp format of run files and scores: local time with its UTC offset."""
    return time.strftime("%Y-%m-%dT%H:%M:%S%z")


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


def cpu_flags() -> set[str]:
    """The CPU's feature flags: the "flags" line on x86, "Features" on ARM."""
    for line in _read("/proc/cpuinfo").splitlines():
        if line.startswith(("flags", "Features")):
            return set(line.split(":", 1)[1].split())
    return set()


def meminfo_bytes(key: str) -> int:
    """A /proc/meminfo figure (MemTotal, MemAvailable) in bytes; 0 when unreadable."""
    for line in _read("/proc/meminfo").splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1]) * 1024
    return 0


def _size_bytes(text: str) -> int:
    """A sysfs cache size ("32K", "1M", "512") in bytes; 0 when unreadable."""
    units = {"K": 2**10, "M": 2**20, "G": 2**30}
    text = text.strip()
    try:
        return int(text[:-1]) * units[text[-1]] if text[-1:] in units else int(text)
    except ValueError:
        return 0


def cache_sizes(cpu_dir: Path = SYS_CPU / "cpu0") -> dict[str, int]:
    """L1d, L1i, L2 and L3 sizes in bytes of the cache instances cpu0 uses (0 where absent)."""
    sizes = {"l1d_bytes": 0, "l1i_bytes": 0, "l2_bytes": 0, "l3_bytes": 0}
    for index in sorted(cpu_dir.glob("cache/index*")):
        level, kind = _read(index / "level"), _read(index / "type")
        key = {("1", "Data"): "l1d_bytes", ("1", "Instruction"): "l1i_bytes"}.get((level, kind), f"l{level}_bytes")
        if key in sizes:
            sizes[key] = _size_bytes(_read(index / "size"))
    return sizes


def last_level_cache_bytes(cpu_root: Path = SYS_CPU) -> int:
    """The node's last-level cache in all: the sizes of every distinct instance of the highest cache level (one per
    socket or core complex), from sysfs; 0 when unreadable."""
    instances: dict[tuple[str, str], int] = {}
    for index in cpu_root.glob("cpu[0-9]*/cache/index*"):
        level = _read(index / "level")
        if level.isdigit():
            instances.setdefault((level, _read(index / "shared_cpu_list")), _size_bytes(_read(index / "size")))
    top = max((int(level) for level, _ in instances), default=0)
    return sum(size for (level, _), size in instances.items() if int(level) == top)


def boost_state(cpu_root: Path = SYS_CPU) -> str:
    """Turbo/boost: "on", "off" or "unknown", from intel_pstate/no_turbo or cpufreq/boost."""
    no_turbo = _read(cpu_root / "intel_pstate/no_turbo")
    if no_turbo in ("0", "1"):
        return "off" if no_turbo == "1" else "on"
    for path in (cpu_root / "cpufreq/boost", cpu_root / "cpufreq/policy0/boost"):
        boost = _read(path)
        if boost in ("0", "1"):
            return "on" if boost == "1" else "off"
    return "unknown"


def selected(text: str) -> str:
    """The bracketed choice of a sysfs setting ("always [madvise] never" -> "madvise"); "unknown" if none."""
    return next((word[1:-1] for word in text.split() if word.startswith("[") and word.endswith("]")), "unknown")


def _sockets(cpus) -> int:
    """Distinct physical packages among the CPUs; 0 when sysfs does not say."""
    ids = {_read(SYS_CPU / f"cpu{cpu}/topology/physical_package_id") for cpu in cpus}
    return len(ids - {""})


def host_facts() -> dict:
    """Facts about this node that explain its timings."""
    online = parse_cpu_list(_read(SYS_CPU / "online")) or tuple(range(os.cpu_count() or 1))
    cores = {core_siblings([c])[c] for c in online}
    nodes = _read("/sys/devices/system/node/online")
    return {
        "hostname": socket.gethostname(),
        "cpu_model": _cpuinfo_model(),
        "logical_cpus": len(online),
        "physical_cores": len(cores),
        "sockets": _sockets(online),
        "numa_nodes": len(parse_cpu_list(nodes)) if nodes else 0,
        **cache_sizes(),
        "memory_bytes": meminfo_bytes("MemTotal"),
        "kernel": platform.release(),
        "governor": _read(SYS_CPU / "cpu0/cpufreq/scaling_governor", "unknown"),
        "boost": boost_state(),
        "smt": _read(SYS_CPU / "smt/control", "unknown"),
        "thp": selected(_read("/sys/kernel/mm/transparent_hugepage/enabled")),
        "simd": ",".join(host_features(cpu_flags())),
    }


def rank_facts() -> dict:
    """What one MPI rank reports about itself: host, its CPU set and their cores, its node's facts."""
    cpus = tuple(sorted(os.sched_getaffinity(0)))
    return {"hostname": socket.gethostname(), "pid": os.getpid(), "cpus": cpus, "siblings": core_siblings(cpus),
            "host": host_facts(), "mem_available": meminfo_bytes("MemAvailable")}


def git_commit(root: Path = Path(__file__).resolve().parent.parent) -> str:
    """The commit checked out at `root` (mpibench's checkout), read from .git without running git; "" when
    mpibench is not run from a checkout. Uncommitted changes are not detected."""
    git = root / ".git"
    if git.is_file():  # a worktree or submodule: "gitdir: <path>"
        text = _read(git)
        if not text.startswith("gitdir:"):
            return ""
        git = (root / text.split(":", 1)[1].strip()).resolve()
    head = _read(git / "HEAD")
    if not head.startswith("ref:"):
        return head if len(head) == 40 else ""
    ref = head.split(":", 1)[1].strip()
    common = git / _read(git / "commondir", ".")
    for gitdir in (git, common):
        commit = _read(gitdir / ref)
        if commit:
            return commit
        for line in _read(gitdir / "packed-refs").splitlines():
            if line.endswith(" " + ref):
                return line.split()[0]
    return ""


def software_versions() -> dict:
    """Versions of Python and the packages that shape the measurements, and mpibench's git commit."""
    versions = {"python": platform.python_version(), "mpibench": __version__, "mpibench_git_commit": git_commit()}
    for package in ("llama-cpp-python", "mpi4py", "numpy", "h5py"):
        try:
            versions[package] = importlib.metadata.version(package)
        except importlib.metadata.PackageNotFoundError:
            versions[package] = "not installed"
    return versions


def _count(n: int, word: str) -> str:
    return f"? {word}s" if not n else f"{n} {word}" + ("" if n == 1 else "s")


def host_lines(host: dict) -> list[str]:
    """Two lines of the facts that explain a host's timings ("?" where an older file lacks them)."""
    def size(key: str) -> str:
        n = host[key]
        return "?" if not n else f"{n // 2**20}M" if n >= 2**20 else f"{n // 2**10}K"

    return [
        f"host {host['hostname']}: {host['cpu_model']}, {_count(host['sockets'], 'socket')}, "
        f"{host['physical_cores']} cores / {host['logical_cpus']} CPUs, {_count(host['numa_nodes'], 'NUMA node')}, "
        f"{host['memory_bytes'] / 2**30:.0f} GiB, job CPUs {host['cpus']}",
        f"  caches L1d {size('l1d_bytes')} L1i {size('l1i_bytes')} L2 {size('l2_bytes')} L3 {size('l3_bytes')}; "
        f"governor {host['governor']}, boost {host['boost'] or '?'}, SMT {host['smt']}, THP {host['thp'] or '?'}; "
        f"kernel {host['kernel']}",
    ]


def software_line(software: dict) -> str:
    """Versions that shape the numbers, from a results file's software_json."""
    names = {"python": "Python", "llama-cpp-python": "llama-cpp-python", "mpi4py": "mpi4py", "mpibench": "mpibench"}
    commit = software.get("mpibench_git_commit")
    return ", ".join(f"{name} {software[key]}" for key, name in names.items() if key in software) + \
        (f" (git {commit[:12]})" if commit else "")
