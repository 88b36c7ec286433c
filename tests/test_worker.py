"""A worker rank with fake runners and a fake channel (no processes, no MPI), and the runner's task step
with a fake engine: which runner serves which job, what each reply records, and how serve() ends; a load point's
runners with fake ones: the engine settings the model's preflight chose."""

import dataclasses
import json
import os
import signal
from collections import deque
from dataclasses import dataclass

import pytest

from load_fakes import fake_point

from mpibench import preflight, runner
from mpibench.affinity import parse_cpu_list
from mpibench.config import build_config
from mpibench.engine.llama import Generation
from mpibench.load import node
from mpibench.load.runners import runner_cores
from mpibench.protocol import (FAILED, NOT_RUN, OK, TIMEOUT, EngineFacts, Failed, Job, Loaded, LoadPointReply,
                               LoadShape, Measurement, Phases, Ready, Request, ServerConfig, Stop)
from mpibench.signals import Interrupted
from mpibench.tasks import expand
from mpibench.worker import LOAD_FAILED, Worker

LOADED = Loaded(load_s=0.25, preflight_s=0.5, model_desc="llama 135M Q4_1", model_bytes=1000,
                engine_weight_buffers="CPU_Mapped")


def measurement(token_ns=(100_000_000, 150_000_000, 200_000_000), end_ns=210_000_000) -> Measurement:
    return Measurement(started_unix=1.7e9, prompt_tokens=20, token_ns=token_ns, end_ns=end_ns, answer="3.14",
                       finish_reason="stop", llama_prompt_ms=90.0, llama_eval_ms=100.0, llama_prompt_n=20,
                       llama_eval_n=2, cpu_user_s=0.2, cpu_sys_s=0.01, peak_rss_bytes=1 << 27, cpus_seen="0")


class FakeRunner:
    """Answers as its script says: `loads` the reply to its load (per start), `replies` one per request."""

    def __init__(self, log, loads, replies, job, settings, attempt=0):
        self.key, self.settings, self.attempt = job.runner_key, settings, attempt
        self.preflighted, self.previous, self.closed = attempt > 0, None, None
        self.loaded, self.replies = loads.popleft(), replies
        self.engine = EngineFacts(engine_library="libggml-cpu.so", system_info="AVX2 = 1")
        self.requests = []
        log.append(self)

    @property
    def facts(self):
        return {"system_info": self.engine.system_info}

    @property
    def columns(self):
        return {"engine_library": self.engine.engine_library, "model_bytes": getattr(self.loaded, "model_bytes", 0)}

    def request(self, message, limit):
        self.requests.append((message, limit))
        return self.replies.popleft()

    def close(self, kill=False):
        self.closed = "killed" if kill else "closed"


@dataclass
class Script:
    loads: deque
    replies: deque
    started: list

    def worker(self):
        return Worker(1, lambda job, settings, attempt=0: FakeRunner(self.started, self.loads, self.replies, job,
                                                                       settings, attempt))


def script(loads=(LOADED,), replies=()):
    return Script(deque(loads), deque(replies), [])


def jobs(threads=(1,), repetitions=2):
    config = build_config("", {"prompts": "pi", "repetitions": repetitions})
    return [Job(t, tuple(range(t.threads)), "/m/smollm2.gguf", "chat", Request("query", "pi?", 8), 2048, 42, None)
            for t in expand(config, threads)]


def test_one_runner_serves_a_group_and_its_result_carries_the_measured_metrics():
    first, second = jobs()[:2]
    play = script(replies=[measurement(), measurement()])
    worker = play.worker()
    one, two = worker.execute(first), worker.execute(second)
    assert len(play.started) == 1 and play.started[0].attempt == 1  # the model's first runner runs the preflight
    result = one.result
    assert (result.status, result.task_id, result.rank, result.cores, result.prompt_format) == \
        (OK, first.task.id, 1, "0", "chat")
    assert result.ttft_s == pytest.approx(0.1) and result.e2e_s == pytest.approx(0.21)
    assert result.generated_tokens == 3 and result.token_ns == (100_000_000, 150_000_000, 200_000_000)
    assert result.engine_library == "libggml-cpu.so" and result.model_bytes == 1000
    assert result.preflight == "1 as built: ok" and result.engine_fallback == 0
    assert two.result.status == OK and not one.model_failed
    assert play.started[0].previous is two.result  # the next time limit is taken from the last success


def test_another_group_gets_a_new_runner_without_a_second_preflight():
    one_thread, two_threads = jobs(threads=(1, 2), repetitions=1)[:2]
    assert one_thread.runner_key != two_threads.runner_key
    play = script(loads=[LOADED, LOADED], replies=[measurement(), measurement()])
    worker = play.worker()
    worker.execute(one_thread)
    worker.execute(two_threads)
    assert [r.attempt for r in play.started] == [1, 0] and play.started[0].closed == "closed"
    worker.close()
    assert play.started[1].closed == "closed"


def test_a_model_that_does_not_load_fails_its_task_and_says_so():
    play = script(loads=[Failed(f"{LOAD_FAILED}: llama.cpp could not load /m/smollm2.gguf")])
    reply = play.worker().execute(jobs()[0])
    assert reply.model_failed and reply.result.status == FAILED
    assert reply.result.error.startswith(LOAD_FAILED) and play.started[0].requests == []


def test_a_runner_that_dies_or_overruns_fails_its_task_and_the_next_gets_a_fresh_runner():
    first, second, third = jobs(repetitions=3)[:3]
    play = script(loads=[LOADED, LOADED, LOADED],
                  replies=[Failed("runner killed by signal 9: ", dead=True, signal=9),
                           Failed("timed out after 5 s; runner killed", dead=True, timeout=True), measurement()])
    worker = play.worker()
    died, overran, ok = (worker.execute(j).result for j in (first, second, third))
    assert (died.status, overran.status, ok.status) == (FAILED, TIMEOUT, OK)
    assert "signal 9" in died.error and "timed out" in overran.error
    assert [r.closed for r in play.started] == ["closed", "closed", None] and len(play.started) == 3


def test_a_preflight_that_dies_falls_back_and_the_choice_is_recorded():
    play = script(loads=[Failed("runner killed by signal 11: ", dead=True, signal=signal.SIGSEGV), LOADED],
                  replies=[measurement()])
    result = play.worker().execute(jobs()[0]).result
    assert [r.settings for r in play.started] == [preflight.EngineSettings(), preflight.EngineSettings(extra_bufts=False)]
    assert result.status == OK and result.engine_fallback == 1
    assert result.preflight == "1 as built: SIGSEGV (signal 11); 2 extra buffer types off: ok"


def test_a_model_no_configuration_runs_is_not_run_without_starting_more_runners():
    dead = Failed("runner killed by signal 4: ", dead=True, signal=signal.SIGILL)
    play = script(loads=[dead, dead])
    worker = play.worker()
    first, second = (worker.execute(j).result for j in jobs()[:2])
    assert (first.status, second.status) == (NOT_RUN, NOT_RUN) and len(play.started) == 2
    assert "every engine configuration died in preflight" in first.error and first.error == second.error
    assert first.preflight == "1 as built: SIGILL (signal 4); 2 extra buffer types off: SIGILL (signal 4)"


class LoadRunners:
    """Fake load runners for LoadNode: each start's engine settings, and a Ready that says them."""

    def __init__(self, monkeypatch):
        self.settings = []
        monkeypatch.setattr(node, "start_runners", self.start)
        monkeypatch.setattr(node, "run_point", lambda point, runners, **clock: LoadPointReply(point.index))

    def start(self, point, settings):
        self.settings.append(settings)
        ready = Ready(load_s=0.1, slots=point.server.slots, n_ctx=point.n_ctx, kv_unified=False,
                      engine_extra_bufts=int(settings.extra_bufts))
        return [LoadRunner(ready) for _ in range(point.server.partitions)]


@dataclass
class LoadRunner:
    ready: Ready

    def wait_ready(self, limit_s):
        return self.ready

    def close(self, kill=False):
        pass


def load_points():
    """Two points of two series (another server configuration: the node starts new runners)."""
    return [dataclasses.replace(fake_point(LoadShape("closed", users=1), Phases()), index=i, server=ServerConfig(1, s, 1))
            for i, s in enumerate((1, 2))]


def test_load_runners_start_with_the_engine_the_preflight_chose_once_per_model(monkeypatch):
    play = script(loads=[Failed("runner killed by signal 11: ", dead=True, signal=signal.SIGSEGV), LOADED])
    runners, worker = LoadRunners(monkeypatch), play.worker()
    first, second = (worker.execute(point) for point in load_points())
    assert [r.settings for r in play.started] == [preflight.EngineSettings(), preflight.EngineSettings(extra_bufts=False)]
    assert [r.closed for r in play.started] == ["closed", "closed"]  # the preflight's runners make way for the load's
    assert play.started[0].key[1] == runner_cores(load_points()[0])[0]  # on the first load runner's cores
    assert runners.settings == [preflight.EngineSettings(extra_bufts=False)] * 2  # the second series: no preflight
    for reply in (first, second):
        (recorded,) = json.loads(reply.runners_json)
        assert not reply.error and recorded["engine_extra_bufts"] == 0 and recorded["engine_fallback"] == 1
        assert recorded["hostname"] == reply.hostname == worker.hostname
        assert recorded["preflight"] == "1 as built: SIGSEGV (signal 11); 2 extra buffer types off: ok"


def test_a_load_point_whose_model_cannot_run_fails_with_the_reason_and_starts_no_load_runner(monkeypatch):
    dead = Failed("runner killed by signal 4: ", dead=True, signal=signal.SIGILL)
    play = script(loads=[dead, dead])
    runners, worker = LoadRunners(monkeypatch), play.worker()
    first, second = (worker.execute(point) for point in load_points())
    assert "fake cannot run on" in first.error and "every engine configuration died in preflight" in first.error
    assert second.error == first.error and len(play.started) == 2 and runners.settings == []


def test_a_load_point_whose_model_does_not_load_says_why_and_the_next_series_tries_again(monkeypatch):
    play = script(loads=[Failed(f"{LOAD_FAILED}: llama.cpp could not load /fake"), LOADED])
    runners, worker = LoadRunners(monkeypatch), play.worker()
    first, second = (worker.execute(point) for point in load_points())
    assert first.error == f"fake: {LOAD_FAILED}: llama.cpp could not load /fake" and first.requests == ()
    assert not second.error and runners.settings == [preflight.EngineSettings()]
    assert [r.attempt for r in play.started] == [1, 1]


class Channel:
    """Rank 0 as scripted: each receive() returns the next message; None while the script waits."""

    def __init__(self, messages):
        self.messages, self.sent = deque(messages), []

    def receive(self, wait=True, within=None):
        if not self.messages:
            assert not wait, "serve() waited for a message the script does not have"
            return None
        message = self.messages.popleft()
        assert not (wait and message is None), "a waiting receive() returns a message"
        return message

    def send(self, reply):
        self.sent.append(reply)


def test_serve_runs_jobs_in_order_until_stop_and_returns_its_code():
    batch = jobs(repetitions=3)[:3]
    play = script(replies=[measurement() for _ in batch])
    channel = Channel([batch[0], batch[1], None, batch[2], None, None, Stop(3)])  # jobs handed ahead
    assert play.worker().serve(channel) == 3
    assert [r.result.task_id for r in channel.sent] == [j.task.id for j in batch]
    assert play.started[0].closed == "closed"


class InterruptingRunner(FakeRunner):
    def request(self, message, limit):
        raise Interrupted(signal.SIGTERM)


@pytest.mark.parametrize("then, code", [([Stop(2)], 2), ([None], 128 + signal.SIGTERM)])
def test_an_interrupt_kills_the_runner_and_waits_for_rank_0s_stop(then, code):
    started = []
    worker = Worker(1, lambda job, settings, attempt=0: InterruptingRunner(started, deque([LOADED]), deque(), job,
                                                                            settings, attempt))

    class Stopping(Channel):
        def receive(self, wait=True, within=None):
            if within is not None:  # after the interrupt: rank 0's stop, or silence until `within` passes
                return self.messages.popleft()
            return super().receive(wait, within)

    channel = Stopping([jobs()[0], None, *then])
    assert worker.serve(channel) == code
    assert started[0].closed == "killed" and channel.sent == []


class FakeEngine:
    def __init__(self):
        self.calls = []

    def generate(self, prompt, max_tokens):
        self.calls.append(("generate", prompt, max_tokens))
        return Generation(12, [5_000_000, 6_000_000], 7_000_000, "yes", "stop", 4.0, 2.0, 12, 1)

    def bench(self, n_prompt, n_gen):
        self.calls.append(("bench", n_prompt, n_gen))
        sum(range(200_000))  # some CPU time to account
        return Generation(n_prompt, [], 9_000_000, "", "length", 8.0, 0.0, n_prompt, 0)


def test_the_runner_measures_a_query_or_a_bench_test_with_its_resource_use():
    engine = FakeEngine()
    query = runner.run_task(engine, Request("query", "Why?", 16))
    bench = runner.run_task(engine, Request("bench", max_tokens=64, n_prompt=64))
    assert engine.calls == [("generate", "Why?", 16), ("bench", 64, 0)]
    assert (query.answer, list(query.token_ns), query.end_ns, query.prompt_tokens) == \
        ("yes", [5_000_000, 6_000_000], 7_000_000, 12)
    assert bench.prompt_tokens == 64 and bench.llama_prompt_ms == 8.0
    assert bench.cpu_user_s + bench.cpu_sys_s > 0 and bench.peak_rss_bytes > 1 << 20
    assert 0 <= bench.started_unix - query.started_unix < 60
    assert set(parse_cpu_list(bench.cpus_seen)) <= os.sched_getaffinity(0)
