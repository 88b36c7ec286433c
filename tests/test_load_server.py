"""The load runner (continuous batching) with the real SmolLM2 model, and its worker-side handle.

Batching must not change what a request gets: sequences that join and leave a shared batch at different moments
give exactly the greedy answers of the study's runner, which serves one request at a time."""

from __future__ import annotations

import os
import select
import signal
import time

import pytest

from mpibench.load.pipes import PipeLines
from mpibench.load.runners import RunnerError, RunnerProcess, partition_cores, start_runners
from mpibench.models import builtin_path
from mpibench.preflight import EngineSettings
from mpibench.protocol import (Job, LoadPoint, LoadShape, Phases, Request, ServeRequest, ServerConfig, Submit,
                               Workload, decode, encode)
from mpibench.tasks import Task
from mpibench.worker import Runner

PROMPTS = ("What is the value of pi?", "Name three primary colours.", "Why is the sky blue?",
           "Write a haiku about the sea.", "What is 12 times 7?")
READY_S = 120.0


@pytest.fixture(scope="module")
def model() -> str:
    return str(builtin_path("smollm2-135m"))


def runner(model: str, slots: int, n_ctx: int = 256, core: int = 0, **settings) -> RunnerProcess:
    process = RunnerProcess.start(ServeRequest(model, (core,), 1, slots, n_ctx, 0, "chat", **settings))
    process.wait_ready(READY_S)
    return process


def collect(process: RunnerProcess, count: int, limit_s: float = 300.0) -> dict:
    """The Finished of `count` requests, by request number."""
    done, deadline = {}, time.monotonic() + limit_s
    while len(done) < count:
        assert time.monotonic() < deadline, f"only {len(done)} of {count} requests ended"
        select.select([process], [], [], 1.0)
        done.update((f.request, f) for f in process.events())
    return done


def drive(process: RunnerProcess, schedule: list[tuple[float, Submit]]) -> dict:
    """Submit each request `delay` seconds after the first (a Submit each), then collect them all."""
    start = time.monotonic()
    for delay, submit in schedule:
        time.sleep(max(0.0, start + delay - time.monotonic()))
        process.submit(submit)
    return collect(process, len(schedule))


@pytest.fixture(scope="module")
def reference(model) -> dict:
    """Each prompt answered alone by the study's runner (mpibench.runner, LlamaEngine.generate), one at a time."""
    job = Job(Task("t", 0, "smollm2-135m", "p", 1, 0), (0,), model, "chat", Request(), 256, 0, None)
    study = Runner(job, EngineSettings())
    try:
        return {prompt: study.request(Request("query", prompt, 48), READY_S) for prompt in PROMPTS}
    finally:
        study.close()


@pytest.mark.parametrize("slots", [2, 4])
def test_batching_gives_the_answers_of_one_sequence_at_a_time(model, reference, slots):
    process = runner(model, slots)
    try:
        submits = [Submit(n, prompt, max_tokens=48) for n, prompt in enumerate(PROMPTS * 2)]
        done = drive(process, [(0.07 * n, s) for n, s in enumerate(submits)])
    finally:
        process.close()
    for submit in submits:
        got, alone = done[submit.request], reference[submit.prompt]
        assert not got.error and got.finish_reason == alone.finish_reason
        assert got.answer == alone.answer and len(got.token_ns) == len(alone.token_ns) > 5
    # they really ran together: some request began while another was generating, and never more than `slots`
    spans = [(f.admit_ns, f.end_ns) for f in done.values()]
    overlaps = [sum(a <= t < e for a, e in spans) for t, _ in spans]
    assert max(overlaps) >= 2 and max(overlaps) <= slots


def test_a_prompt_longer_than_a_batch_is_prefilled_in_chunks_beside_a_running_sequence(model, reference):
    """2100 prompt tokens exceed llama_batch's 2048: the prompt goes in over two steps while another sequence
    decodes, and both answers are those each gets alone (the random prompt is the runner's first either way)."""
    long = Submit(2, prompt_tokens=2100, max_tokens=8, ignore_eos=True)
    alone = runner(model, 1, n_ctx=2304)
    try:
        alone.submit(long)
        expected = collect(alone, 1)[2]
    finally:
        alone.close()
    process = runner(model, 2, n_ctx=2304)
    try:
        done = drive(process, [(0.0, Submit(1, PROMPTS[2], max_tokens=48)), (0.1, long)])
    finally:
        process.close()
    assert done[1].answer == reference[PROMPTS[2]].answer and done[1].end_ns > done[2].admit_ns
    assert (done[2].answer, len(done[2].token_ns)) == (expected.answer, 8) and done[2].prompt_tokens == 2100


def test_times_are_ordered_and_ignore_eos_gives_exactly_max_tokens(model):
    process = runner(model, 2)
    try:
        sent = time.monotonic_ns()
        done = drive(process, [(0.0, Submit(1, "Reply with the single word yes.", max_tokens=40)),
                               (0.0, Submit(2, "Reply with the single word yes.", max_tokens=40, ignore_eos=True)),
                               (0.05, Submit(3, prompt_tokens=24, max_tokens=40, ignore_eos=True))])
    finally:
        process.close()
    assert done[1].finish_reason == "stop" and len(done[1].token_ns) < 40
    assert done[2].finish_reason == done[3].finish_reason == "length"
    assert len(done[2].token_ns) == len(done[3].token_ns) == 40 and done[3].prompt_tokens == 24
    for finished in done.values():
        times = [finished.admit_ns, *finished.token_ns, finished.end_ns]
        assert sent <= finished.admit_ns and times == sorted(times), finished


def test_a_request_too_long_for_its_context_fails_alone(model):
    process = runner(model, 2, n_ctx=64)
    try:
        done = drive(process, [(0.0, Submit(1, PROMPTS[0], max_tokens=16)),
                               (0.0, Submit(2, prompt_tokens=80, max_tokens=4)),
                               (0.0, Submit(3, PROMPTS[4], max_tokens=16))])
    finally:
        process.close()
    assert "80 tokens; it does not fit n_ctx=64 per sequence" in done[2].error and done[2].admit_ns == -1
    assert not done[1].error and not done[3].error and done[1].token_ns and done[3].token_ns


def test_requests_beyond_the_slots_wait_for_one(model):
    process = runner(model, 1)
    try:
        done = drive(process, [(0.0, Submit(1, prompt_tokens=8, max_tokens=20, ignore_eos=True)),
                               (0.0, Submit(2, prompt_tokens=8, max_tokens=20, ignore_eos=True))])
    finally:
        process.close()
    assert done[1].end_ns <= done[2].admit_ns and len(done[2].token_ns) == 20


def test_unified_kv_is_recorded_as_llama_cpp_took_it(model):
    for unified in (False, True):
        process = runner(model, 4, n_ctx=256, kv_unified=unified)
        process.close()
        assert (process.ready.kv_unified, process.ready.slots, process.ready.n_ctx) == (unified, 4, 1024)


def test_ready_says_the_engine_settings_the_runner_ran_with(model):
    for extra in (True, False):
        process = runner(model, 2, extra_bufts=extra)
        process.close()
        assert process.ready.engine_extra_bufts == int(extra) and "CPU" in process.ready.engine_weight_buffers


def test_closing_stdin_finishes_what_runs_then_exits(model):
    process = runner(model, 2)
    process.submit(Submit(1, prompt_tokens=8, max_tokens=30, ignore_eos=True))
    process.process.stdin.close()
    done = []
    with pytest.raises(RunnerError, match="exited with code 0"):
        while True:
            select.select([process], [], [], 1.0)
            done += process.events()
    assert [(f.request, len(f.token_ns)) for f in done] == [(1, 30)]


def test_a_runner_killed_mid_run_raises_from_events(model):
    process = runner(model, 2)
    process.submit(Submit(1, prompt_tokens=8, max_tokens=200, ignore_eos=True))
    time.sleep(0.3)
    os.kill(process.process.pid, signal.SIGKILL)
    with pytest.raises(RunnerError, match="killed by signal 9"):
        for _ in range(100):
            select.select([process], [], [], 0.1)
            process.events()
    process.close()


def test_a_model_that_does_not_load_is_a_runner_error(tmp_path):
    bad = tmp_path / "bad.gguf"
    bad.write_bytes(b"GGUF" + bytes(64))
    process = RunnerProcess.start(ServeRequest(str(bad), (0,), 1, 2, 256, 0, "chat"))
    with pytest.raises(RunnerError, match="model failed to load"):
        process.wait_ready(READY_S)


def point(model: str, partitions: int, generator_core: int, cores=(0, 1)) -> LoadPoint:
    return LoadPoint(0, ServerConfig(partitions, 2, 1), LoadShape("closed", users=1), Workload("fixed"), Phases(),
                     "smollm2-135m", model, "chat", 128, 0, cores, generator_core)


@pytest.mark.skipif(len(os.sched_getaffinity(0)) < 2, reason="needs 2 cores")
def test_start_runners_puts_each_runner_on_its_own_cores(model):
    cores = tuple(sorted(os.sched_getaffinity(0))[:2])
    runners = start_runners(point(model, 2, -1, cores), EngineSettings())
    try:
        readies = [r.wait_ready(READY_S) for r in runners]
        pinned = [os.sched_getaffinity(r.process.pid) for r in runners]
    finally:
        for r in runners:
            r.close()
    assert sorted(r.cpus for r in readies) == sorted(str(c) for c in cores)
    assert pinned[0].isdisjoint(pinned[1]) and len(pinned[0]) == len(pinned[1]) == 1
    [alone] = start_runners(point(model, 1, cores[0], cores), EngineSettings())
    try:
        assert alone.wait_ready(READY_S).cpus == str(cores[1])
    finally:
        alone.close()


def test_partitions_never_use_the_generator_core_and_say_when_cores_do_not_suffice():
    assert partition_cores((0, 2, 1, 3), 2, 3, 1) == [(0,), (1,), (3,)]
    assert partition_cores((0, 1, 2, 3, 4), 9, 2, 2) == [(0, 1), (2, 3)]
    with pytest.raises(RunnerError, match="2 load runners of 1 thread each need 2 cores, but the node offers 1 "
                                          r"besides the generator's CPU 0 \(CPUs 1\)"):
        partition_cores((0, 1), 0, 2, 1)


def test_pipe_lines_come_whole_and_the_pipe_says_when_closed():
    read_end, write_end = os.pipe()
    lines = PipeLines(read_end)
    assert lines.read(0.0) == [] and not lines.closed
    os.write(write_end, encode(Submit(1)).encode() + b'{"type": "Sub')
    assert [decode(line) for line in lines.read(0.0)] == [Submit(1)]
    os.write(write_end, encode(Submit(2))[13:].encode())
    assert [decode(line) for line in lines.read(None)] == [Submit(2)]
    os.close(write_end)
    assert lines.read(None) == [] and lines.closed
    os.close(read_end)
