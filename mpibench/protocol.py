"""Every message that crosses a process boundary, as a frozen dataclass (pure).

Rank 0 -> worker: `ProbeRequest` (the node's read-bandwidth probe, answered with a `ProbeReply` of `Bandwidth`
rows, before the first task), `Job`, then `Stop` (over MPI, pickled). Worker -> runner: `LoadRequest`, then one
`Request` a task (over the runner's stdin, one JSON line each). Runner -> worker: `EngineFacts` (the CPU backend
about to run), `Loaded` or `Failed`, then one `Measurement` or `Failed` a task; a runner that dies or overruns is
read as `Failed` with `dead` set. Worker -> rank 0: `TaskReply`, which carries the task's `Result`: one row of
the results table, its fields generated from store/schema.py's columns and defaulted there.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field, fields, make_dataclass

from mpibench.store.schema import BANDWIDTH_COLUMNS, RESULT_COLUMNS, RESULT_DEFAULTS
from mpibench.tasks import Task

OK, FAILED, TIMEOUT, NOT_RUN = "ok", "failed", "timeout", "not_run"  # Result.status values
_TYPES = {"str": str, "int": int, "float": float}

Result = make_dataclass(
    "Result",
    [(name, _TYPES[kind], field(default=RESULT_DEFAULTS[name])) for name, kind in RESULT_COLUMNS]
    + [("answer", str, field(default="")), ("token_ns", tuple, field(default=()))],
    frozen=True,
)
Result.__module__ = __name__  # pickled across MPI by this name
Result.__doc__ = "One task's row of the results table, with its answer and token times (ns since the request started)."
RESULT_FIELDS = frozenset(f.name for f in fields(Result))

Bandwidth = make_dataclass("Bandwidth", [(name, _TYPES[kind]) for name, kind in BANDWIDTH_COLUMNS], frozen=True)
Bandwidth.__module__ = __name__
Bandwidth.__doc__ = "One row of the bandwidth table: a node's read bandwidth at one thread count (mpibench/bandwidth.py)."


def task_columns(task: Task) -> dict:
    """The result columns that come from the task itself."""
    return {"task_id": task.id, "index": task.index, "kind": task.kind, "model": task.model,
            "prompt_id": task.prompt_id, "threads": task.threads, "repetition": task.repetition,
            "warmup": int(task.warmup)}


def unrun_result(task: Task, error: str, rank: int = -1, hostname: str = "", status: str = FAILED) -> Result:
    """The result of a task that did not run (or whose worker vanished), with the reason."""
    return Result(**task_columns(task), rank=rank, hostname=hostname, status=status, error=error)


def result_from_row(row: dict) -> Result:
    """A journalled or stored row as a Result; columns an earlier mpibench did not write take their defaults."""
    return Result(**{k: (tuple(v) if k == "token_ns" else v) for k, v in row.items() if k in RESULT_FIELDS})


def fields_of(record) -> dict:
    """A flat record's fields as a dict, without asdict's deep copy (every token time copied one by one)."""
    return {f.name: getattr(record, f.name) for f in fields(record)}


def result_row(result: Result) -> dict:
    """The row as a dict of plain values (for the journal and the results file)."""
    return dict(fields_of(result), token_ns=list(result.token_ns))


@dataclass(frozen=True)
class Request:
    """What a runner does for one task: answer a prompt, or a llama-bench test (n_prompt or n_gen tokens)."""

    kind: str = "query"
    prompt: str = ""
    max_tokens: int = 0  # for a bench test: the tokens it generates
    n_prompt: int = 0
    n_gen: int = 0


@dataclass(frozen=True)
class Job:
    """A task for a worker: where to run it and what its runner is started with."""

    task: Task
    cores: tuple[int, ...]
    model_path: str
    prompt_format: str
    request: Request
    n_ctx: int
    seed: int
    timeout: float | None
    synthetic: int = 0  # the model is synthetic: its results rows say so

    @property
    def runner_key(self) -> tuple:
        """Jobs with the same key share a runner (the model loaded once)."""
        return (self.model_path, self.cores, self.n_ctx, self.seed, self.prompt_format)


@dataclass(frozen=True)
class ProbeRequest:
    """Rank 0 asks a node's first worker for the node's read bandwidth on each set of cores (the cores a task of
    each thread count gets there)."""

    core_sets: tuple[tuple[int, ...], ...]


@dataclass(frozen=True)
class ProbeReply:
    """The node's bandwidth rows, or why the probe could not run."""

    rows: tuple = ()  # of Bandwidth
    error: str = ""


@dataclass(frozen=True)
class Stop:
    """Rank 0 tells a worker to end, with the exit code the job ends with."""

    code: int


@dataclass(frozen=True)
class TaskReply:
    """A worker's answer to a job; `model_failed` says that the model cannot load there (its other tasks
    need not be tried)."""

    result: Result
    model_failed: bool = False


@dataclass(frozen=True)
class LoadRequest:
    """The first line a runner reads: the model, its cores and settings, and the engine configuration;
    `preflight` > 0 (the attempt's number) makes it decode a test batch after loading."""

    model_path: str
    cores: tuple[int, ...]
    n_ctx: int
    seed: int
    prompt_format: str
    avoid_amx: bool = False
    extra_bufts: bool = True
    preflight: int = 0


@dataclass(frozen=True)
class EngineFacts:
    """The CPU backend a runner is about to use (sent before loading, so that a crash can be explained)."""

    engine_library: str = ""
    engine_library_sha256: str = ""
    engine_compiler: str = ""
    engine_fix: str = ""
    engine_variant: str = ""
    engine_extra_bufts: int = 1
    system_info: str = ""


@dataclass(frozen=True)
class Loaded:
    """The model loaded (and passed its preflight, when asked)."""

    load_s: float
    preflight_s: float
    model_desc: str
    model_bytes: int
    engine_weight_buffers: str
    model_params: int = 0


@dataclass(frozen=True)
class Failed:
    """A load or task that did not succeed: why, and whether the runner is gone (by `signal`, or killed
    after `timeout`)."""

    error: str
    dead: bool = False
    signal: int = 0
    timeout: bool = False


@dataclass(frozen=True)
class Measurement:
    """A runner's timings and answer for one task."""

    started_unix: float
    prompt_tokens: int
    token_ns: tuple[int, ...]
    end_ns: int
    answer: str
    finish_reason: str
    llama_prompt_ms: float
    llama_eval_ms: float
    llama_prompt_n: int
    llama_eval_n: int
    cpu_user_s: float
    cpu_sys_s: float
    peak_rss_bytes: int
    cpus_seen: str
    involuntary_switches: int = 0
    other_cpu_s: float = 0.0  # contention.Contention's fields
    steal_s: float = 0.0
    contention_share: float = 0.0
    contended: int = 0


PIPE_MESSAGES = {cls.__name__: cls for cls in (LoadRequest, Request, EngineFacts, Loaded, Failed, Measurement)}


def encode(message) -> str:
    """One pipe message as a JSON line."""
    return json.dumps({"type": type(message).__name__, **fields_of(message)}) + "\n"


def decode(line: str):
    """The pipe message of a JSON line (lists become tuples, as the dataclasses declare them)."""
    data = json.loads(line)
    cls = PIPE_MESSAGES[data.pop("type")]
    return cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in data.items()})
