"""The compiler trap in llama.cpp's AMX matmul, and the build-time fix for it (stdlib only).

GCC 11.x, 12.1-12.3 and 13.1-13.2 write `_tile_loadconfig` as an asm whose memory operand is 8 bytes
(`*(const void **)__config`), so the compiler treats the stores that fill the rest of the 64-byte tile
config as dead and drops them (GCC PR target/114098; fixed by a builtin in 14, backported to 13.3 and
12.4; whether 11.5 has it is unchecked). llama.cpp's ggml_tile_config_init then loads a config without
rows or column widths, and AMX multi-token decodes die (SIGSEGV in ggml_backend_amx_mul_mat, SIGILL in
a variants build). Clang's `_tile_loadconfig` is a builtin that reads the whole config: not affected.

The fix is a copy of the compiler's own amxtileintrin.h with both operands widened to 64 bytes, put
first on the include path of the build. It also adds AMX_FIX_MARKER to the .comment section of every
object that includes it, so a built library carries proof of the fix.

    python -m mpibench.toolchain amx-fix DIR   # prints the flags to build with, or nothing
    python -m mpibench.toolchain comments LIB  # the .comment strings of a library
"""

import os
import re
import shlex
import struct
import subprocess
import sys
import tempfile
from pathlib import Path

AMX_FIX_MARKER = "mpibench: amx tilecfg fix"
HEADER = "amxtileintrin.h"
TIMEOUT = 120

# The 8-byte operands of the affected headers, and their 64-byte replacements.
_OPERANDS = {
    '"m" (*((const void **)__config))': '"m" (*(const char (*)[64]) __config)',
    '"=m" (*((void **)__config))': '"=m" (*(char (*)[64]) __config)',
}
_HEADER_END = "#endif /* _AMXTILEINTRIN_H_INCLUDED */"
# .ident appends to .comment with the section flags gas uses for the compiler's own ident; an explicit
# .pushsection .comment draws "setting incorrect section attributes" from gas in every object.
_MARKER_ASM = f'__asm__ (".ident \\"{AMX_FIX_MARKER}\\"");\n'

# ggml_tile_config_init in miniature: a config store the asm does not see as read (rows[7], byte 55),
# of a value the compiler cannot know (so it cannot fold it into the zeroing).
_PROBE = """#include <immintrin.h>
struct tile_config { unsigned char palette_id, start_row, reserved[14]; unsigned short colsb[16];
                     unsigned char rows[16]; };
extern "C" unsigned char next_rows(void);
extern "C" void probe(void) { tile_config tc = {}; tc.palette_id = 1; tc.rows[7] = next_rows();
                              _tile_loadconfig(&tc); }
"""
_CALL = re.compile(r"^\s*call\w*\s+\S*next_rows")
_LDTILECFG = re.compile(r"^\s*ldtilecfg\b")
_STORE = re.compile(r"^\s*mov\w*\s+%\w+,\s*-?\d*\(%r[sb]p\)\s*$")  # AT&T: a register into the stack frame


class ToolchainError(Exception):
    """The compiler could not be asked, or its answer could not be read."""


def _compile(cxx: str, args: list[str], source: str) -> subprocess.CompletedProcess:
    """Run `cxx` (a command line, as in $CXX) with `args` on `source`."""
    with tempfile.TemporaryDirectory(prefix="mpibench-amx-") as tmp:
        path = Path(tmp, "probe.cpp")
        path.write_text(source)
        try:
            return subprocess.run([*shlex.split(cxx), *args, str(path)], capture_output=True, text=True,
                                  timeout=TIMEOUT, cwd=tmp)
        except FileNotFoundError:
            raise ToolchainError(f"C++ compiler '{cxx}' not found (set CXX)") from None
        except subprocess.TimeoutExpired:
            raise ToolchainError(f"'{cxx}' took over {TIMEOUT} s to compile a 5-line probe") from None


def tilecfg_stores_dropped(cxx: str = "c++", include_dirs=()) -> bool | None:
    """Whether `cxx` drops tile-config stores before `_tile_loadconfig`; None if it cannot compile AMX at all."""
    includes = [f"-I{d}" for d in include_dirs]
    proc = _compile(cxx, [*includes, "-x", "c++", "-O2", "-mamx-tile", "-masm=att", "-S", "-o", "-"], _PROBE)
    if proc.returncode != 0:
        return None
    lines = proc.stdout.splitlines()
    call = next((i for i, line in enumerate(lines) if _CALL.match(line)), None)
    load = next((i for i, line in enumerate(lines) if _LDTILECFG.match(line)), None)
    if call is None or load is None or load < call:
        raise ToolchainError(f"cannot read '{cxx}'s assembly of the probe: no call then ldtilecfg")
    return not any(_STORE.match(line) for line in lines[call + 1:load])


def compiler_header(cxx: str = "c++") -> Path:
    """The amxtileintrin.h that `cxx` includes."""
    proc = _compile(cxx, ["-x", "c++", "-mamx-tile", "-E", "-H", "-o", os.devnull], "#include <immintrin.h>\n")
    found = [line.lstrip(". ") for line in proc.stderr.splitlines() if line.rstrip().endswith("/" + HEADER)]
    if proc.returncode != 0 or not found:
        raise ToolchainError(f"'{cxx}' includes no {HEADER} from <immintrin.h>")
    return Path(found[0].strip())


def fixed_header_text(original: str) -> str:
    """`original` (an affected amxtileintrin.h) with 64-byte operands and the marker."""
    for expected in (*_OPERANDS, _HEADER_END):
        if original.count(expected) != 1:
            raise ToolchainError(f"{HEADER} is not the known GCC 11-13 text (no single {expected}); not fixing it")
    for old, new in _OPERANDS.items():
        original = original.replace(old, new)
    return original.replace(_HEADER_END, _MARKER_ASM + _HEADER_END)


def write_fixed_header(out_dir, cxx: str = "c++") -> Path:
    """Write the fixed copy of `cxx`'s amxtileintrin.h into `out_dir` and check that `cxx` then keeps the stores."""
    source = compiler_header(cxx)
    out = Path(out_dir).resolve()
    out.mkdir(parents=True, exist_ok=True)
    target = out / HEADER
    target.write_text(fixed_header_text(source.read_text()))
    if tilecfg_stores_dropped(cxx, [out]) is not False:
        target.unlink()
        raise ToolchainError(f"the fixed copy of {source} does not make '{cxx}' keep the tile-config stores")
    return target


def library_comments(path) -> list[str]:
    """The strings of an ELF64 little-endian file's .comment section; [] for other files or no section."""
    try:
        with open(path, "rb") as f:
            head = f.read(64)
            if len(head) < 64 or head[:6] != b"\x7fELF\x02\x01":
                return []
            shoff, = struct.unpack_from("<Q", head, 0x28)
            shentsize, shnum, shstrndx = struct.unpack_from("<HHH", head, 0x3A)
            if not shoff or shentsize < 64 or shstrndx >= shnum:
                return []
            f.seek(shoff)
            table = f.read(shentsize * shnum)
            sections = [struct.unpack_from("<IIQQQQ", table, i * shentsize) for i in range(len(table) // shentsize)]
            if len(sections) != shnum:
                return []

            def read(section) -> bytes:
                f.seek(section[4])
                return f.read(section[5])

            names = read(sections[shstrndx])
            for section in sections:
                if names[section[0]:].split(b"\0", 1)[0] == b".comment":
                    return [s.decode("utf-8", "replace") for s in read(section).split(b"\0") if s]
    except OSError:
        return []
    return []


def compiler_affected(comment: str) -> bool:
    """Whether a .comment string names a compiler with the 8-byte `_tile_loadconfig` operand.

    By version, GCC 11.x, 12.1-12.3, 13.1-13.2. A distribution's branch snapshot may carry the fix under
    the old version number; at build time tilecfg_stores_dropped decides.
    """
    match = re.match(r"GCC: \(.*\) (\d+)\.(\d+)", comment)
    if not match:
        return False
    major, minor = int(match[1]), int(match[2])
    return major == 11 or (major == 12 and minor < 4) or (major == 13 and minor < 3)


def has_amx_fix(comments) -> bool:
    """Whether a library's .comment strings carry the fix marker."""
    return AMX_FIX_MARKER in comments


def amx_fix_flags(out_dir, cxx: str = "c++") -> str:
    """The compiler flags that fix `cxx`'s AMX build (the fixed header written into `out_dir`), or ''."""
    if not tilecfg_stores_dropped(cxx):
        return ""
    return f"-I{write_fixed_header(out_dir, cxx).parent}"


def main(argv=None) -> int:
    args = sys.argv[1:] if argv is None else argv
    try:
        if len(args) == 2 and args[0] == "amx-fix":
            flags = amx_fix_flags(args[1], os.environ.get("CXX") or "c++")
            if flags:
                print(flags)
        elif len(args) == 2 and args[0] == "comments":
            print("\n".join(library_comments(args[1])))
        else:
            print("usage: python -m mpibench.toolchain amx-fix DIR | comments LIB", file=sys.stderr)
            return 2
    except ToolchainError as error:
        print(f"mpibench.toolchain: error: {error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
