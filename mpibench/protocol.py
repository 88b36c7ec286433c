"""Every message that crosses a process boundary, as a frozen dataclass (pure).

Rank 0 -> worker: `ProbeRequest` (the node's read-bandwidth probe, answered with a `ProbeReply` of `Bandwidth`
rows, before the first task), `Job`, then `Stop` (over MPI, pickled). Worker -> runner: `LoadRequest`, then one
`Request` a task (over the runner's stdin, one JSON line each). Runner -> worker: `EngineFacts` (the CPU backend
about to run), `Loaded` or `Failed`, then one `Measurement` or `Failed` a task; a runner that dies or overruns is
read as `Failed` with `dead` set. Worker -> rank 0: `TaskReply`, which carries the task's `Result`: one row of
the results table, its fields generated from store/schema.py's columns and defaulted there.

Load testing: rank 0 -> worker `LoadPoint`, answered with a `LoadPointReply` of `RequestRecord`s. Worker -> load
runner: `ServeRequest`, then `Submit`s; load runner -> worker: `Ready` (or `Failed`), then `Finished` per request.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field, fields, make_dataclass

from mpibench.store.schema import BANDWIDTH_COLUMNS, RESULT_COLUMNS, RESULT_DEFAULTS
from mpibench.table import counted
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


# Load testing (mpibench load). Every timestamp `*_ns` of a load point is time.monotonic_ns() on the node
# (CLOCK_MONOTONIC, one clock for the worker and its runners), stored relative to the point's t0.

@dataclass(frozen=True)
class ServerConfig:
    """A node's server configuration: `partitions` (P) runners on disjoint cores, each batching up to `slots` (S)
    sequences with `threads` (T) threads; P x 1 x T is a partition, 1 x S x T continuous batching, P x S x T both."""

    partitions: int = 1
    slots: int = 1
    threads: int = 1
    kv_unified: bool = False  # one KV buffer shared by a runner's sequences (llama.cpp's kv_unified)

    @property
    def label(self) -> str:
        return f"P{self.partitions}xS{self.slots}xT{self.threads}"


@dataclass(frozen=True)
class LoadShape:
    """How requests arrive. Closed loop: `users` each send a request, wait for its end, think, send the next.
    Open loop: requests arrive at `rate` per second on a seeded schedule, whatever the server does, with at most
    `max_concurrency` in the system (0: no cap; an arrival over the cap waits in the generator's queue)."""

    mode: str  # "closed" or "open"
    users: int = 0
    think: str = "none"  # closed loop: "none", "constant" or "exponential" think time
    think_s: float = 0.0  # its mean
    rate: float = 0.0  # open loop: requests per second
    arrivals: str = "poisson"  # open loop: "constant", "poisson" or "gamma"
    gamma_shape: float = 0.5  # gamma arrivals: shape k (inter-arrival CV = 1/sqrt(k)); k = 1 is Poisson
    max_concurrency: int = 0

    @property
    def label(self) -> str:
        if self.mode == "closed":
            think = "" if self.think == "none" else f", think {self.think} {self.think_s:g} s"
            return counted(self.users, "user") + think
        return f"{self.rate:g}/s {self.arrivals}" + (f" cap {self.max_concurrency}" if self.max_concurrency else "")


@dataclass(frozen=True)
class Workload:
    """What each request asks. "prompts": the study's prompts in turn (`prompts` of (id, text)), answered up to
    `max_tokens`. "fixed": `prompt_tokens` random tokens, then exactly `gen_tokens` generated with end-of-sequence
    ignored (comparable with llama-batched-bench)."""

    kind: str
    prompts: tuple[tuple[str, str], ...] = ()
    max_tokens: int = 0
    prompt_tokens: int = 0
    gen_tokens: int = 0


@dataclass(frozen=True)
class Phases:
    """A load point's time line, in seconds from its t0: ramp-up (closed loop: users start spread over it; open
    loop: the rate rises linearly), warm-up, the steady window that is measured, cool-down (load goes on, so the
    window's last requests see it). Then nothing new arrives; requests in the system finish (up to `drain_s`)."""

    ramp_up_s: float = 0.0
    warmup_s: float = 0.0
    duration_s: float = 60.0
    cooldown_s: float = 0.0
    drain_s: float = 60.0


@dataclass(frozen=True)
class LoadPoint:
    """Rank 0 hands a node's worker one load point: a server configuration under one load, on the node's
    `cores` (runners) with the generator pinned to `generator_core`, which no runner uses. A point replicated on
    several nodes runs as `replicas` such points (replica 0 .. replicas - 1, each with its own seed), all starting at
    the wall-clock time `start_unix`; 0: the node starts it as soon as it has it."""

    index: int
    server: ServerConfig
    shape: LoadShape
    workload: Workload
    phases: Phases
    model: str
    model_path: str
    prompt_format: str
    n_ctx: int  # per sequence
    seed: int
    cores: tuple[int, ...]
    generator_core: int
    synthetic: int = 0
    replica: int = 0
    replicas: int = 1
    start_unix: float = 0.0


@dataclass(frozen=True)
class LoadPrepare:
    """Rank 0 asks a node to start a load point's runners (loading its model) ahead of the point, so that its
    replicas can start together; the node answers LoadReady."""

    point: LoadPoint


@dataclass(frozen=True)
class LoadReady:
    """A node's runners for a load point are up (or could not start: `error` says why)."""

    index: int
    hostname: str = ""
    error: str = ""


@dataclass(frozen=True)
class RequestRecord:
    """One request of a load point (a row of the `requests` table). Times are ns from the point's t0: intended
    (the schedule's start), dispatch (the generator issued it), admission (a runner began it), first token, end;
    -1 where it never got there. `token_ns` holds every generated token's time."""

    request: int
    user: int  # closed loop: the user; open loop: -1
    runner: int  # which of the P runners served it; -1: none
    prompt_id: str
    phase: str  # where its intended start lies: "ramp_up", "warmup", "steady", "cooldown"
    status: str  # OK, FAILED, or NOT_RUN (still queued when the drain ended)
    intended_ns: int
    dispatch_ns: int = -1
    admit_ns: int = -1
    first_token_ns: int = -1
    end_ns: int = -1
    prompt_tokens: int = 0
    generated_tokens: int = 0
    error: str = ""
    token_ns: tuple[int, ...] = ()
    replica: int = 0  # which replica of a point replicated on several nodes (its node's own clock and t0)


@dataclass(frozen=True)
class LoadPointReply:
    """A worker's answer to a load point: its requests and what its runners and generator were."""

    index: int
    requests: tuple[RequestRecord, ...] = ()
    hostname: str = ""
    started_unix: float = 0.0  # wall clock at the point's t0
    ended_ns: int = 0  # when its last request ended (or the drain stopped), from t0
    generator_cpu_s: float = 0.0  # the generator's CPU time over the point
    runners_json: str = "[]"  # each runner's Ready, as JSON
    error: str = ""  # the point could not run (a runner failed to start): why
    stopped_ns: int = -1  # when the load stopped before its schedule's end (every runner failed), from t0; -1: never


# Worker -> load runner ("server") child: one ServeRequest, then Submit lines; the runner answers Ready (or
# Failed), then one Finished per request, in the order requests end.

@dataclass(frozen=True)
class ServeRequest:
    """Start a load runner: the model on these cores, up to `slots` sequences at once of `n_ctx` tokens each."""

    model_path: str
    cores: tuple[int, ...]
    threads: int
    slots: int
    n_ctx: int
    seed: int
    prompt_format: str
    kv_unified: bool = False
    avoid_amx: bool = False  # the engine settings the model's preflight chose (LoadRequest's)
    extra_bufts: bool = True


@dataclass(frozen=True)
class Ready:
    """A load runner loaded its model and can take `slots` sequences."""

    load_s: float
    slots: int
    n_ctx: int  # the context's total tokens (all sequences)
    kv_unified: bool
    model_desc: str = ""
    model_bytes: int = 0
    cpus: str = ""
    engine_variant: str = ""  # the CPU variant of a portable build it loaded ("" for a plain build)
    engine_extra_bufts: int = 1  # its engine settings (ServeRequest's): extra buffer types on
    engine_weight_buffers: str = ""  # the buffer types its weights went to (AMX, CPU_REPACK, CPU_Mapped)


@dataclass(frozen=True)
class Submit:
    """A request for a load runner: `prompt` (templated by the runner) or, when `prompt_tokens` > 0, that many
    random tokens; up to `max_tokens` generated, end-of-sequence ignored when `ignore_eos`."""

    request: int
    prompt: str = ""
    prompt_tokens: int = 0
    max_tokens: int = 16
    ignore_eos: bool = False


@dataclass(frozen=True)
class Finished:
    """A load runner's request ended: admitted (began its prefill) at `admit_ns`, tokens at `token_ns`, ended at
    `end_ns`; absolute time.monotonic_ns() values (admit_ns -1: never admitted). `error` says why it failed, if it
    did; `answer` is the generated text."""

    request: int
    admit_ns: int
    token_ns: tuple[int, ...]
    end_ns: int
    prompt_tokens: int
    finish_reason: str = ""
    error: str = ""
    answer: str = ""


PIPE_MESSAGES = {cls.__name__: cls for cls in (LoadRequest, Request, EngineFacts, Loaded, Failed, Measurement,
                                               ServeRequest, Ready, Submit, Finished)}


def encode(message) -> str:
    """One pipe message as a JSON line."""
    return json.dumps({"type": type(message).__name__, **fields_of(message)}) + "\n"


def decode(line: str):
    """The pipe message of a JSON line (lists become tuples, as the dataclasses declare them)."""
    data = json.loads(line)
    cls = PIPE_MESSAGES[data.pop("type")]
    return cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in data.items()})
