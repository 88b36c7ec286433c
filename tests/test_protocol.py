"""The messages between processes: Result generated from the schema's columns, pipe encoding, pickling."""

import math
import pickle
from dataclasses import fields

from mpibench.protocol import (Failed, Job, Loaded, LoadRequest, Measurement, Request, Result, Stop, TaskReply,
                               decode, encode, result_from_row, result_row, unrun_result)
from mpibench.store.schema import RESULT_COLUMNS
from mpibench.tasks import Task

TASK = Task("abc", 3, "smollm2-135m", "pi", 2, -1)


def test_result_fields_are_the_schemas_columns_with_the_answer_and_token_times():
    assert [f.name for f in fields(Result)] == [c for c, _ in RESULT_COLUMNS] + ["answer", "token_ns"]
    empty = Result()
    assert empty.kind == "query" and empty.status == "" and math.isnan(empty.e2e_s) and empty.threads == 0


def test_a_row_from_an_earlier_journal_gets_the_missing_columns_defaulted_and_unknown_keys_dropped():
    result = result_from_row({"task_id": "x", "status": "ok", "token_ns": [1, 2], "model_desc_old": "gone"})
    assert result.kind == "query" and result.token_ns == (1, 2) and math.isnan(result.ttft_s)
    row = result_row(result)
    assert row["token_ns"] == [1, 2] and set(row) == {f.name for f in fields(Result)}
    assert result_from_row(row).token_ns == result.token_ns


def test_an_unrun_task_says_why_and_keeps_the_tasks_own_columns():
    result = unrun_result(TASK, "not run: no node", rank=2, hostname="n1")
    assert (result.task_id, result.index, result.prompt_id, result.threads, result.repetition, result.warmup) == \
        ("abc", 3, "pi", 2, -1, 1)
    assert (result.status, result.error, result.rank, result.hostname) == ("failed", "not run: no node", 2, "n1")


def test_every_pipe_message_survives_its_json_line():
    messages = [
        LoadRequest("/m.gguf", (0, 1), 2048, 42, "{prompt}", avoid_amx=True, preflight=1),
        Request("bench", max_tokens=16, n_gen=16),
        Loaded(0.5, 0.1, "llama 135M", 1000, "CPU_REPACK"),
        Failed("runner killed by signal 11: ...", dead=True, signal=11),
        Measurement(1.0, 5, (10, 20), 30, "answer\n", "stop", 1.0, 2.0, 5, 1, 0.1, 0.0, 1 << 20, "0-1"),
    ]
    for message in messages:
        line = encode(message)
        assert line.endswith("\n") and line.count("\n") == 1
        assert decode(line) == message


def test_jobs_and_replies_pickle_for_mpi():
    job = Job(TASK, (0, 1), "/m.gguf", "{prompt}", Request("query", "Why?", 8), 2048, 42, None)
    assert pickle.loads(pickle.dumps(job)) == job
    assert job.runner_key == ("/m.gguf", (0, 1), 2048, 42, "{prompt}")
    reply = TaskReply(Result(task_id="a", status="ok", token_ns=(1,)), model_failed=True)
    back = pickle.loads(pickle.dumps(reply))
    assert back.model_failed and back.result.token_ns == (1,) and type(back.result) is Result
    assert pickle.loads(pickle.dumps(Stop(3))) == Stop(3)
