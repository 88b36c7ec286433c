"""SIMD features: those the llama.cpp build uses on a node (its system_info) against those the node's CPU has.

A build tuned to another CPU either crashes (illegal instruction) or leaves fast instructions unused and
every number comes out too slow; the hosts table shows both sides and the difference (see
launch/build-portable.sh).
"""

from __future__ import annotations

# llama.cpp's system_info feature name -> the /proc/cpuinfo flag (x86 "flags", ARM "Features") it needs.
CPU_FLAGS = {
    "SSE3": "pni", "SSSE3": "ssse3", "AVX": "avx", "AVX2": "avx2", "F16C": "f16c", "FMA": "fma", "BMI2": "bmi2",
    "AVX_VNNI": "avx_vnni", "AVX512": "avx512f", "AVX512_VBMI": "avx512vbmi", "AVX512_VNNI": "avx512_vnni",
    "AVX512_BF16": "avx512_bf16", "AMX_INT8": "amx_int8",
    "NEON": "asimd", "ARM_FMA": "asimd", "FP16_VA": "asimdhp", "DOTPROD": "asimddp", "MATMUL_INT8": "i8mm",
    "SVE": "sve", "SME": "sme",
}


def host_features(cpu_flags: set[str]) -> list[str]:
    """The llama.cpp features this CPU can run, from its /proc/cpuinfo flags."""
    return [name for name, flag in CPU_FLAGS.items() if flag in cpu_flags]


def build_features(system_info: str) -> list[str]:
    """The SIMD features a llama.cpp build uses, from llama_print_system_info() ("AVX2 = 1 | ...")."""
    used = set()
    for item in system_info.replace(":", "|").split("|"):
        name, _, value = item.partition("=")
        if value.strip() == "1" and name.strip() in CPU_FLAGS:
            used.add(name.strip())
    return [name for name in CPU_FLAGS if name in used]


def mismatch(host: list[str], build: list[str]) -> str:
    """What differs between a CPU's features and a build's, in words; empty when they agree."""
    unused = [f for f in host if f not in build]
    missing = [f for f in build if f not in host]
    parts = ([f"the build leaves {','.join(unused)} of this CPU unused"] if unused else []) + \
            ([f"the build uses {','.join(missing)} that this CPU lacks"] if missing else [])
    return "; ".join(parts)


def annotate_hosts(hosts: list[dict], records: list[dict]) -> list[dict]:
    """Host rows with the llama.cpp build's system_info seen on each host (from its tasks) and the mismatch."""
    seen: dict[str, list[str]] = {}
    for record in records:
        info = record.get("system_info")
        if info and info not in seen.setdefault(record["hostname"], []):
            seen[record["hostname"]].append(info)
    rows = []
    for host in hosts:
        infos = seen.get(host["hostname"], [])
        simd = host.get("simd", "")
        build = [f for info in infos for f in build_features(info)]
        rows.append(dict(host, simd=simd, llama_system_info=" || ".join(infos),
                         simd_mismatch=mismatch(simd.split(",") if simd else [], build) if infos and simd else ""))
    return rows
