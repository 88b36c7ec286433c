"""`mpibench probe`: each node's read bandwidth at each thread count, measured by its lowest rank (as `doctor`
checks nodes) on the cores a task of that count would get there: the rank's CPUs, physical cores first.

A run or bench measures the same before its first task, through each node's first worker rank and on the cores
its tasks get (run.py); `doctor` reports it too.
"""

from __future__ import annotations

import sys

from mpibench import mpi
from mpibench.affinity import physical_first
from mpibench.bandwidth import ProbeError, probe
from mpibench.config import default_thread_counts
from mpibench.metadata import rank_facts
from mpibench.table import table_lines


def core_sets(cores: tuple[int, ...], threads: tuple[int, ...]) -> list[tuple[int, ...]]:
    """The cores a task of each thread count gets from `cores` (ordered physical first): its first t; counts above
    the cores are left out."""
    return [cores[:t] for t in threads if t <= len(cores)]


def node_probe(facts: dict, threads: tuple[int, ...] | None) -> tuple[list, list[str], str]:
    """This node's bandwidth rows on the CPUs of `facts` (a rank's), at `threads` (default: every count a run
    would sweep there); the counts left out, in words; the error that stopped the probe ("" if none)."""
    cores = physical_first(facts["cpus"], facts["siblings"])
    threads = threads or default_thread_counts(len(cores))
    above = [t for t in threads if t > len(cores)]
    skipped = [f"{','.join(map(str, above))} threads not probed: this rank has {len(cores)} CPUs"] if above else []
    try:
        return probe(core_sets(cores, threads)), skipped, ""
    except ProbeError as error:
        return [], skipped, str(error)


def table(rows) -> list[str]:
    """The probe's rows as `mpibench probe` prints them."""
    lines = [("host", "threads", "cores", "GB/s", "CV %", "passes", "working set")]
    lines += [(r.hostname, str(r.threads), r.cores, f"{r.gb_per_s:.1f}", f"{100 * r.cv:.1f}", str(r.repeats),
               f"{r.working_set_bytes / 2**20:.0f} MiB") for r in rows]
    return table_lines(lines, left=1)


def probe_command(threads: tuple[int, ...] | None) -> int:
    """Every rank: node leaders probe their node, rank 0 prints the table; 1 when a node could not be probed."""
    comm = mpi.comm_world()
    facts = rank_facts()
    mine = (facts["hostname"], *node_probe(facts, threads)) if mpi.node_leader(comm) == comm.rank else None
    nodes = [node for node in mpi.gather(comm, mine) or [] if node]
    if comm.rank != 0:
        return 0
    rows = [row for _, node_rows, _, _ in nodes for row in node_rows]
    notes = [f"warning: {host}: {line}" for host, _, skipped, _ in nodes for line in skipped]
    notes += [f"error: {host}: {error}" for host, _, _, error in nodes if error]
    if rows:
        print(f"mpibench probe: read bandwidth, {rows[0].method} (each thread sums its own slice of the working set, "
              "pinned to its core)")
        print("\n".join(table(rows)))
    if not rows and not any(note.startswith("error") for note in notes):
        notes.append("error: nothing probed: every thread count exceeds the CPUs of the nodes' lowest ranks")
    for note in notes:
        print(f"mpibench: {note}", file=sys.stderr)
    sys.stdout.flush()
    return 1 if any(note.startswith("error") for note in notes) else 0
