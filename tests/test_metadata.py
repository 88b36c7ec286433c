"""Host and software facts: read from /proc, /sys and .git files only (fake trees here, then this machine)."""

import ast
import inspect
import subprocess
from pathlib import Path

import pytest

from mpibench import metadata
from mpibench.metadata import boost_state, cache_sizes, git_commit, host_facts, host_lines, selected, software_versions
from mpibench.store.schema import HOST_COLUMNS


def write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text + "\n")


def test_cache_sizes_from_sysfs(tmp_path):
    for index, (level, kind, size) in enumerate([("1", "Data", "48K"), ("1", "Instruction", "32K"),
                                                 ("2", "Unified", "2048K"), ("3", "Unified", "105M")]):
        for name, value in (("level", level), ("type", kind), ("size", size)):
            write(tmp_path / f"cache/index{index}/{name}", value)
    assert cache_sizes(tmp_path) == {"l1d_bytes": 48 * 1024, "l1i_bytes": 32 * 1024, "l2_bytes": 2 * 2**20,
                                     "l3_bytes": 105 * 2**20}
    assert cache_sizes(tmp_path / "none") == {"l1d_bytes": 0, "l1i_bytes": 0, "l2_bytes": 0, "l3_bytes": 0}


@pytest.mark.parametrize("files, state", [
    ({"intel_pstate/no_turbo": "1"}, "off"), ({"intel_pstate/no_turbo": "0"}, "on"),
    ({"cpufreq/boost": "1"}, "on"), ({"cpufreq/policy0/boost": "0"}, "off"), ({}, "unknown"),
])
def test_boost_state(tmp_path, files, state):
    for name, value in files.items():
        write(tmp_path / name, value)
    assert boost_state(tmp_path) == state


def test_selected_setting():
    assert selected("always [madvise] never") == "madvise"
    assert selected("[always] madvise never") == "always" and selected("") == "unknown"


COMMIT = "0123456789abcdef0123456789abcdef01234567"


def test_git_commit_from_loose_and_packed_refs_and_a_detached_head(tmp_path):
    assert git_commit(tmp_path) == ""  # not a checkout
    write(tmp_path / ".git/HEAD", "ref: refs/heads/main")
    write(tmp_path / ".git/packed-refs", f"# pack-refs with: peeled\n{COMMIT} refs/heads/main")
    assert git_commit(tmp_path) == COMMIT
    write(tmp_path / ".git/refs/heads/main", COMMIT[::-1])  # a loose ref wins over the packed one
    assert git_commit(tmp_path) == COMMIT[::-1]
    write(tmp_path / ".git/HEAD", COMMIT)
    assert git_commit(tmp_path) == COMMIT


def test_git_commit_of_a_worktree(tmp_path):
    main, tree = tmp_path / "main", tmp_path / "tree"
    write(main / ".git/refs/heads/feature", COMMIT)
    write(main / ".git/worktrees/tree/HEAD", "ref: refs/heads/feature")
    write(main / ".git/worktrees/tree/commondir", "../..")
    write(tree / ".git", f"gitdir: {main / '.git/worktrees/tree'}")
    assert git_commit(tree) == COMMIT


def test_this_checkouts_commit_matches_git():
    root = Path(metadata.__file__).resolve().parent.parent
    if not (root / ".git").exists():
        pytest.skip("mpibench is not run from a checkout")
    head = subprocess.run(["git", "-C", str(root), "rev-parse", "HEAD"], capture_output=True, text=True).stdout.strip()
    assert software_versions()["mpibench_git_commit"] == head


def test_host_facts_fill_every_host_column_the_node_knows():
    facts = host_facts()
    filled_elsewhere = {"cpus", "llama_system_info", "simd_mismatch"}
    assert {c for c, _ in HOST_COLUMNS} - filled_elsewhere == set(facts)
    for column, kind in HOST_COLUMNS:
        if column in facts:
            assert isinstance(facts[column], {"str": str, "int": int}[kind]), column
    assert facts["logical_cpus"] >= facts["physical_cores"] >= 1 and facts["memory_bytes"] > 0
    assert facts["boost"] in ("on", "off", "unknown")
    lines = host_lines(dict(facts, cpus="0-1"))
    assert len(lines) == 2 and lines[0].startswith(f"host {facts['hostname']}: ") and "THP" in lines[1]


def test_metadata_starts_no_process():
    tree = ast.parse(inspect.getsource(metadata))
    imported = {a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
    imported |= {n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)}
    called = {n.attr for n in ast.walk(tree) if isinstance(n, ast.Attribute)}
    assert "subprocess" not in imported and not called & {"system", "popen", "fork", "execv", "spawnv"}
