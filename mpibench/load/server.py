"""Load runner child process: continuous batching of up to S sequences of one model on its pinned cores.

Started by load/runners.py as `python -m mpibench.load.server` with the OpenMP environment already set.
Protocol (protocol.py's messages, one JSON line each): stdin: a ServeRequest, then Submit lines; stdout (kept
private: llama.cpp's prints go to stderr): Ready once the model loaded (or Failed), then one Finished per request
in the order requests end. Idle, it blocks on stdin; while sequences run it takes the Submits already there
between decode steps (beyond its S slots they wait, in order, for one to free). Every time is
time.monotonic_ns(): admission when a request's prefill goes into a batch, each token when it was sampled, the
end. A request that cannot run (a prompt too long for a sequence's context) gets a Finished with its error and
the others go on. When stdin closes it finishes what runs, then exits.
"""

from __future__ import annotations

import os
import sys
import time
from collections import deque

from mpibench.affinity import format_cpu_list
from mpibench.load.pipes import PipeLines
from mpibench.protocol import Failed, Finished, Ready, ServeRequest, Submit, decode, encode


def finished(engine, sequence) -> Finished:
    return Finished(sequence.request, sequence.admit_ns, tuple(sequence.token_ns), sequence.end_ns,
                    sequence.prompt_tokens, sequence.finish, answer=engine.answer(sequence.generated))


def admit(engine, submit: Submit, reply) -> None:
    """Start a request in a free slot, or answer at once why it cannot run."""
    tokens = engine.random_tokens(submit.prompt_tokens) if submit.prompt_tokens > 0 else engine.tokens_for(submit.prompt)
    try:
        engine.start(submit.request, tokens, submit.max_tokens, submit.ignore_eos)
    except ValueError as error:
        reply(Finished(submit.request, -1, (), time.monotonic_ns(), len(tokens), error=str(error)))


def serve(engine, requests: PipeLines, reply, waiting: deque) -> int:
    """The runner's loop, until stdin closes and nothing runs; returns the exit code."""
    while engine.running or waiting or not requests.closed:
        busy = engine.running or waiting
        waiting.extend(decode(line) for line in requests.read(0.0 if busy else None) if line.strip())
        while waiting and engine.free:
            admit(engine, waiting.popleft(), reply)
        if not engine.running:
            continue
        try:
            ended = engine.step()
        except RuntimeError as error:  # the batch is lost: every request in the runner fails with the reason
            for sequence in engine.running:
                reply(Finished(sequence.request, sequence.admit_ns, tuple(sequence.token_ns), time.monotonic_ns(),
                               sequence.prompt_tokens, error=str(error)))
            for submit in waiting:
                reply(Finished(submit.request, -1, (), time.monotonic_ns(), 0, error=str(error)))
            return 1
        for sequence in ended:
            reply(finished(engine, sequence))
    return 0


def main() -> int:
    replies = os.fdopen(os.dup(1), "w", buffering=1)
    os.dup2(2, 1)  # whatever the C library prints must not corrupt the protocol

    def reply(message) -> None:
        replies.write(encode(message))

    requests = PipeLines(0)
    lines = requests.read(None)
    if not lines:
        print("mpibench.load.server: stdin closed before a ServeRequest", file=sys.stderr)
        return 1
    request: ServeRequest = decode(lines[0])
    os.sched_setaffinity(0, request.cores)
    try:
        from mpibench.engine import llama

        _, variant = llama.load_cpu_backend(request.avoid_amx)
        started = time.perf_counter()
        engine = llama.BatchedEngine(request.model_path, request.threads, request.slots, request.n_ctx, request.seed,
                                     request.prompt_format, request.kv_unified, request.extra_bufts)
        desc, size, _ = engine.description()
        reply(Ready(load_s=time.perf_counter() - started, slots=len(engine.free), n_ctx=engine.total_ctx,
                    kv_unified=engine.kv_unified_taken, model_desc=desc, model_bytes=size,
                    cpus=format_cpu_list(os.sched_getaffinity(0)), engine_variant=variant,
                    engine_extra_bufts=int(request.extra_bufts),
                    engine_weight_buffers=",".join(engine.weight_buffers)))
    except Exception as error:
        reply(Failed(f"model failed to load: {error}"))
        return 1
    return serve(engine, requests, reply, deque(decode(line) for line in lines[1:] if line.strip()))


if __name__ == "__main__":
    sys.exit(main())
