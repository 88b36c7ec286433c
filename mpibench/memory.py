"""Memory guard (pure): does a model's file plus its KV cache fit a node's available memory?

llama.cpp maps the file (its pages are page cache) and allocates the KV cache (F16 K and V for every layer and
position of the context); compute buffers (tens of MiB) are not counted. The node's memory is what
/proc/meminfo's MemAvailable said at the start of the run: what can be had without swapping, page cache of the
model file included."""

from __future__ import annotations

KV_ENTRY_BYTES = 2  # llama.cpp's default cache type, F16, for K and for V
GIB = 2**30


def kv_cache_bytes(layers: int, kv_heads: int, key_dim: int, value_dim: int, n_ctx: int) -> int:
    """Bytes of the K and V caches of `n_ctx` positions."""
    return layers * kv_heads * (key_dim + value_dim) * KV_ENTRY_BYTES * n_ctx


def refusal(model: str, file_bytes: int, kv_bytes: int, n_ctx: int, node: str, available: int) -> str | None:
    """Why a model cannot run on a node (one line, with what to do), or None when it fits."""
    need = file_bytes + kv_bytes
    if need <= available:
        return None
    return (f"model {model} needs {need / GIB:.1f} GiB (file {file_bytes / GIB:.1f} GiB + KV cache "
            f"{kv_bytes / GIB:.1f} GiB at n_ctx {n_ctx}), more than the {available / GIB:.1f} GiB node {node} has "
            "available (MemAvailable): leave it out, run it on nodes with more memory, lower --ctx, or pass "
            "--allow-oversize to run it anyway")


def refusals(needs: dict[str, tuple[int, int]], n_ctx: int, available: dict[str, int]) -> list[str]:
    """One line for each model (name -> (file bytes, KV cache bytes per position)) that some node (name ->
    available bytes) cannot hold with a context of `n_ctx` positions, naming the first such node."""
    lines = []
    for model, (file_bytes, kv_per_token) in needs.items():
        lines += [line for node, memory in available.items()
                  if (line := refusal(model, file_bytes, kv_per_token * n_ctx, n_ctx, node, memory))][:1]
    return lines
