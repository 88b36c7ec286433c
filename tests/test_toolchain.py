"""The AMX tile-config compiler trap and its fix, with the real compiler: probe, fixed header, marker, CLI."""

import importlib.util
import os
import shlex
import struct
import subprocess
import sys
from pathlib import Path

import pytest

from mpibench.toolchain import (AMX_FIX_MARKER, ToolchainError, compiler_affected, compiler_header, fixed_header_text,
                                has_amx_fix, library_comments, tilecfg_stores_dropped, write_fixed_header)

ROOT = Path(__file__).resolve().parent.parent
EIGHT_BYTE_OPERAND = '"m" (*((const void **)__config))'


@pytest.fixture(scope="module")
def dropped():
    """Whether the machine's c++ drops the stores; skips where it cannot compile AMX intrinsics."""
    result = tilecfg_stores_dropped()
    if result is None:
        pytest.skip("c++ cannot compile AMX intrinsics here (not x86-64, or too old)")
    return result


@pytest.fixture
def affected(dropped):
    if not dropped:
        pytest.skip("c++ keeps the tile-config stores: there is nothing to fix")


def compiler_ident(tmp_path) -> str:
    """The compiler's own .comment string, from an object it compiles."""
    subprocess.run(["c++", "-x", "c++", "-c", "-o", str(tmp_path / "ident.o"), "-"], input="int x;\n", text=True,
                   check=True, timeout=60)
    return library_comments(tmp_path / "ident.o")[0]


def shared_library(tmp_path, *flags: str) -> Path:
    """A shared object of two C++ files that include <immintrin.h>, built with `flags`."""
    objects = []
    for name in ("a", "b"):
        source = tmp_path / f"{name}.cpp"
        source.write_text(f"#include <immintrin.h>\nint {name}(void) {{ return 1; }}\n")
        objects.append(str(tmp_path / f"{name}.o"))
        subprocess.run(["c++", *flags, "-O2", "-fPIC", "-c", str(source), "-o", objects[-1]], check=True, timeout=60)
    subprocess.run(["c++", "-shared", "-o", str(tmp_path / "libprobe.so"), *objects], check=True, timeout=60)
    return tmp_path / "libprobe.so"


def test_the_compiler_drops_the_stores_exactly_when_its_header_has_the_8_byte_operand(dropped, tmp_path):
    assert dropped == (EIGHT_BYTE_OPERAND in compiler_header().read_text())
    ident = compiler_ident(tmp_path)
    if ident.startswith("GCC: (Debian 12.2"):  # this machine's compiler
        assert dropped and compiler_affected(ident)


def test_the_fixed_header_keeps_the_stores_and_marks_each_library_once(affected, tmp_path):
    header = write_fixed_header(tmp_path / "fix")
    assert header == (tmp_path / "fix/amxtileintrin.h").resolve()
    assert EIGHT_BYTE_OPERAND not in header.read_text()
    assert tilecfg_stores_dropped(include_dirs=[header.parent]) is False
    for name in ("fixed", "plain"):
        (tmp_path / name).mkdir()
    fixed = library_comments(shared_library(tmp_path / "fixed", f"-I{header.parent}"))
    assert fixed.count(AMX_FIX_MARKER) == 1 and fixed[0].startswith("GCC: ") and has_amx_fix(fixed)
    assert not has_amx_fix(library_comments(shared_library(tmp_path / "plain")))


def test_a_header_of_unknown_text_is_not_rewritten():
    fixed_in_gcc_14 = "_tile_loadconfig (const void *__config)\n{\n  __builtin_ia32_ldtilecfg (__config);\n}\n"
    with pytest.raises(ToolchainError, match="not the known GCC 11-13 text"):
        fixed_header_text(fixed_in_gcc_14)


def test_the_installed_cpu_backend_names_its_compiler():
    spec = importlib.util.find_spec("llama_cpp")
    if spec is None:
        pytest.skip("llama-cpp-python is not installed")
    package = Path(spec.submodule_search_locations[0])  # a portable build's variants are in site-packages/bin
    libraries = [*(package / "lib").glob("libggml-cpu*.so"), *(package.parent / "bin").glob("libggml-cpu-*.so")]
    assert libraries
    for library in libraries:
        assert any(comment.startswith("GCC: ") for comment in library_comments(library)), library


def test_files_without_an_elf64_comment_section_give_nothing(tmp_path):
    (tmp_path / "text").write_text("not an elf file\n")
    (tmp_path / "empty").write_bytes(b"")
    (tmp_path / "elf32").write_bytes(b"\x7fELF\x01\x01\x01" + bytes(57))
    (tmp_path / "truncated").write_bytes(b"\x7fELF\x02\x01\x01" + bytes(30))
    past_the_end = bytearray(b"\x7fELF\x02\x01\x01" + bytes(57))
    struct.pack_into("<Q", past_the_end, 0x28, 1 << 40)  # e_shoff
    struct.pack_into("<HHH", past_the_end, 0x3A, 64, 1, 0)  # e_shentsize, e_shnum, e_shstrndx
    (tmp_path / "headers-past-the-end").write_bytes(past_the_end)
    for name in ("text", "empty", "elf32", "truncated", "headers-past-the-end", "missing"):
        assert library_comments(tmp_path / name) == [], name


@pytest.mark.parametrize("comment, affected", [
    ("GCC: (Ubuntu 11.4.0-1ubuntu1~22.04) 11.4.0", True),
    ("GCC: (Debian 12.2.0-14+deb12u1) 12.2.0", True),
    ("GCC: (GNU) 12.3.1 20230508 (Red Hat 12.3.1-1)", True),
    ("GCC: (GNU) 12.4.0", False),
    ("GCC: (GNU) 13.2.0", True),
    ("GCC: (Debian 13.3.0-1) 13.3.0", False),
    ("GCC: (Debian 14.2.0-19) 14.2.0", False),
    ("clang version 16.0.6 (15)", False),
    ("Debian clang version 14.0.6", False),
    (AMX_FIX_MARKER, False),
])
def test_affected_compilers_by_their_comment(comment, affected):
    assert compiler_affected(comment) is affected


def toolchain(*args: str, **env: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "mpibench.toolchain", *args], cwd=ROOT, capture_output=True,
                          text=True, timeout=120, env=dict(os.environ, **env))


def test_the_command_line_prints_the_flags_and_writes_the_header(dropped, tmp_path):
    proc = toolchain("amx-fix", str(tmp_path / "fix"))
    assert proc.returncode == 0 and proc.stderr == ""
    if dropped:
        assert proc.stdout == f"-I{(tmp_path / 'fix').resolve()}\n"
        assert (tmp_path / "fix/amxtileintrin.h").is_file()
    else:
        assert proc.stdout == "" and not (tmp_path / "fix").exists()


def test_the_command_line_says_in_one_line_when_it_cannot_tell(tmp_path):
    proc = toolchain("amx-fix", str(tmp_path / "fix"), CXX="/nonexistent/c++")
    assert proc.returncode == 1 and proc.stdout == ""
    assert proc.stderr == "mpibench.toolchain: error: C++ compiler '/nonexistent/c++' not found (set CXX)\n"
    assert toolchain("amx-fix").returncode == 2


def test_the_portable_build_dry_run_builds_with_the_fix(dropped):
    proc = subprocess.run(["bash", "launch/build-portable.sh", "native", "--dry-run"], cwd=ROOT, capture_output=True,
                          text=True, timeout=120, env={k: v for k, v in os.environ.items() if k != "CXXFLAGS"})
    assert proc.returncode == 0, proc.stderr
    wheel = shlex.split(proc.stdout.splitlines()[0])
    assert wheel[:2] == ["env", "CMAKE_ARGS=-DGGML_NATIVE=ON"]
    if dropped:
        assert wheel[2] == f"CXXFLAGS=-I{ROOT}/build/amx-fix"
        assert wheel[wheel.index("--wheel-dir") + 1] == "build/wheels/native-amxfix"
        assert "drops AMX tile-config stores; building with the fixed header" in proc.stderr
    else:
        assert not [word for word in wheel if word.startswith("CXXFLAGS=")]
