"""How long a runner may take, before its worker kills it (pure).

A configured `timeout` applies to every task as it is. Otherwise a runner's first task, which includes
loading the model, gets FIRST_TASK_S; later tasks get SAFETY times what the runner's previous task
predicts for this one (its prefill time plus max_tokens at its time per output token), at least MIN_TASK_S.
"""

from __future__ import annotations

import math

FIRST_TASK_S = 1800.0
MIN_TASK_S = 60.0
SAFETY = 10.0
LOST_WORKER_GRACE_S = 10.0


def task_limit(configured: float | None, previous, max_tokens: int) -> float:
    """Seconds the next task of a runner may take; `previous` is the runner's last successful Result."""
    if configured is not None:
        return configured
    if previous is None:
        return FIRST_TASK_S
    per_token = previous.tpot_s if not math.isnan(previous.tpot_s) else previous.e2e_s
    prefill = previous.ttft_s if not math.isnan(previous.ttft_s) else 0.0
    if math.isnan(per_token):
        return FIRST_TASK_S
    return max(MIN_TASK_S, SAFETY * (prefill + max_tokens * per_token))


def worker_silence_limit(configured: float | None) -> float:
    """How long rank 0 waits for a worker's answer before it counts the worker as lost.

    Covers a model load and a task at their longest, whatever the worker's own limits were.
    """
    return 2 * (configured if configured is not None else FIRST_TASK_S) + LOST_WORKER_GRACE_S
