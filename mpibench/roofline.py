"""The memory roofline of decode (pure): bytes read per generated token, the bound a node's read bandwidth puts
on decode speed, and the share of it a task reached.

Decoding one token reads every weight once (llama.cpp's tensor bytes, `model_bytes`) and the KV cache of the
positions before it. With llama.cpp's default f16 cache a cached position costs n_layers x n_kv_heads x
(key_length + value_length) x 2 bytes. A decode step at position p reads p + 1 cached positions (its own
included); a task's figure is the mean over its decoded positions. Bound = bandwidth / bytes per token: no
decode can go faster than the node reads memory. Prefill reads the weights once per batch and is compute-bound,
so it has no such bound.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from mpibench.memory import kv_cache_bytes
from mpibench.store.schema import ROOFLINE_COLUMNS

NAN = float("nan")


def mean_cached_positions(kind: str, prompt_tokens: int, generated_tokens: int) -> float:
    """Mean positions the KV cache holds (the step's own included) over the decode steps decode_tok_s times; NaN
    when there are none.

    A query's decode speed covers generated - 1 steps (the first token comes from the prefill), at positions
    prompt .. prompt + generated - 2; a bench tgN test's covers its N steps, at positions prompt .. prompt + N - 1.
    """
    steps = generated_tokens - (0 if kind == "bench" else 1)
    if steps < 1:
        return NAN
    first = prompt_tokens
    return first + (steps - 1) / 2 + 1


def bytes_per_token(model_bytes: int, kv_per_position: int, positions: float) -> float:
    """Bytes read to decode one token: the weights plus the cache at `positions` cached positions; NaN when the
    model's size or cache shape is unknown."""
    if model_bytes <= 0 or kv_per_position <= 0 or math.isnan(positions):
        return NAN
    return model_bytes + kv_per_position * positions


def bound_tok_s(gb_per_s: float, per_token: float) -> float:
    """Tokens/s the read bandwidth allows at `per_token` bytes a token."""
    return gb_per_s * 1e9 / per_token if per_token > 0 else NAN


def probe_for(rows: Sequence[dict], hostname: str, threads: int, started_unix: float) -> dict | None:
    """The bandwidth row of a task: its host's at its thread count, the latest probed before it started (a resumed
    run probes each launch); failing that, the earliest probed after."""
    mine = sorted((r for r in rows if r["hostname"] == hostname and r["threads"] == threads),
                  key=lambda r: r["probed_unix"])
    before = [r for r in mine if not r["probed_unix"] > started_unix]  # a NaN start takes the latest
    return before[-1] if before else (mine[0] if mine else None)


def task_roofline(record: dict, model: dict | None, bandwidth: Sequence[dict]) -> dict[str, float]:
    """A result row's ROOFLINE_COLUMNS from its model's row and the run's bandwidth rows (NaN where undefined)."""
    empty = {name: NAN for name, _ in ROOFLINE_COLUMNS}
    if model is None or record.get("status") != "ok" or math.isnan(record.get("decode_tok_s", NAN)):
        return empty
    kv = kv_cache_bytes(model.get("n_layers", 0), model.get("n_kv_heads", 0), model.get("key_length", 0),
                        model.get("value_length", 0), 1)
    positions = mean_cached_positions(record.get("kind") or "query", record["prompt_tokens"],
                                      record["generated_tokens"])
    per_token = bytes_per_token(record.get("model_bytes", 0), kv, positions)
    probe = probe_for(bandwidth, record["hostname"], record["threads"], record.get("started_unix", NAN))
    if math.isnan(per_token) or probe is None:
        return dict(empty, bytes_per_token=per_token)
    bound = bound_tok_s(probe["gb_per_s"], per_token)
    return {"bytes_per_token": per_token, "roofline_tok_s": bound, "roofline_fraction": record["decode_tok_s"] / bound}


def bandwidth_by_host(rows: Sequence[dict]) -> dict[str, str]:
    """Per host, in words: its read bandwidth at each thread count, from the latest probe of each."""
    latest = {(r["hostname"], r["threads"]): r for r in sorted(rows, key=lambda r: r["probed_unix"])}
    words = {}
    for host in dict.fromkeys(host for host, _ in latest):
        mine = sorted((r for (h, _), r in latest.items() if h == host), key=lambda r: r["threads"])
        figures = ", ".join(f"{r['gb_per_s']:.1f} GB/s at {r['threads']} thread{'s' * (r['threads'] > 1)} "
                            f"(CV {100 * r['cv']:.1f} %)" for r in mine)
        words[host] = f"{figures}; {mine[0]['method']} over {mine[0]['working_set_bytes'] / 2**20:.0f} MiB"
    return words


def bandwidth_lines(rows: Sequence[dict]) -> list[str]:
    """One line per host: its read bandwidth at each thread count."""
    return [f"read bandwidth of {host}: {words}" for host, words in bandwidth_by_host(rows).items()]
