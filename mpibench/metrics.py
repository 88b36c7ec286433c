"""Latency and throughput metrics from token timestamps (pure).

Definitions (all times in seconds, measured with perf_counter_ns around the engine calls):
- TTFT: start of the request to the first generated token; covers prompt processing (prefill).
- prefill tok/s: prompt tokens / TTFT.
- decode tok/s: (generated tokens - 1) / (last token time - first token time).
- TPOT (time per output token): (end-to-end - TTFT) / (generated tokens - 1), averaged over the decode.
- ITL (inter-token latency): each gap between consecutive tokens; TPOT is their mean, ITL keeps the spread.
- end-to-end: start of the request to the end of generation.
"""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from dataclasses import dataclass

NS = 1e-9


@dataclass(frozen=True)
class Latency:
    ttft_s: float
    prefill_tok_s: float
    decode_tok_s: float
    tpot_s: float
    itl_median_s: float
    itl_max_s: float
    e2e_s: float


def latency(token_ns: Sequence[int], end_ns: int, prompt_tokens: int) -> Latency:
    """Metrics from token arrival times and the end time, in ns since the request started.

    Undefined values (no tokens, a single token) are NaN rather than a guess.
    """
    nan = float("nan")
    e2e = end_ns * NS
    if not token_ns:
        return Latency(nan, nan, nan, nan, nan, nan, e2e)
    ttft = token_ns[0] * NS
    prefill = prompt_tokens / ttft if ttft > 0 else nan
    gaps = [(b - a) * NS for a, b in zip(token_ns, token_ns[1:])]
    if not gaps:
        return Latency(ttft, prefill, nan, nan, nan, nan, e2e)
    decode_span = (token_ns[-1] - token_ns[0]) * NS
    return Latency(
        ttft_s=ttft,
        prefill_tok_s=prefill,
        decode_tok_s=len(gaps) / decode_span if decode_span > 0 else nan,
        tpot_s=(e2e - ttft) / len(gaps),
        itl_median_s=statistics.median(gaps),
        itl_max_s=max(gaps),
        e2e_s=e2e,
    )


def bench_throughput(n_prompt: int, n_gen: int, seconds: float) -> dict:
    """llama-bench's throughput of a test: ppN, N prompt tokens / time (no TTFT: nothing is generated);
    tgN, N tokens / time."""
    nan = float("nan")
    if n_prompt:
        return {"prefill_tok_s": n_prompt / seconds, "ttft_s": nan}
    return {"decode_tok_s": n_gen / seconds, "prefill_tok_s": nan}
