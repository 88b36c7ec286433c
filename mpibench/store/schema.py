"""Columns of the results file's tables: one list, shared by the writer, the reader and the runner."""

from __future__ import annotations

SCHEMA_VERSION = 7  # 2: hosts gained simd, llama_system_info, simd_mismatch, sockets, numa_nodes, caches, boost,
# thp; models gained llama_desc, llama_bytes; root attribute launch_json; results gained kind, warmup and
# runner_start_s. 3: results gained the engine configuration (engine_*, system_info, preflight*) and the
# status "not_run" (readers default what an early file lacks). 4: results gained model_desc and model_bytes;
# root attribute launches_json (every launch of a resumed run, with its hosts and software). 5: results
# gained involuntary_switches, other_cpu_s, steal_s, contention_share and contended (other work on the cores);
# models gained synthetic and sha256, results gained synthetic and model_params (readers default 0 and "");
# table bandwidth (each launch's read-bandwidth probe per host and thread count); models gained n_layers,
# n_kv_heads, key_length, value_length; results gained the derived bytes_per_token, roofline_tok_s and
# roofline_fraction (ROOFLINE_COLUMNS). 6: a load run's tables load_points, requests (with the ragged
# request_token_ns) and timeline (LOAD_POINT_COLUMNS, REQUEST_COLUMNS, TIMELINE_COLUMNS); files without them read
# with none. 7: load_points gained replicas (readers default 1), requests gained replica (default 0)

# (column, kind): kind is "str", "int" or "float". Floats are NaN where a metric is undefined.
RESULT_COLUMNS = (
    ("task_id", "str"), ("index", "int"), ("kind", "str"), ("model", "str"), ("prompt_id", "str"),
    ("threads", "int"), ("repetition", "int"), ("warmup", "int"), ("status", "str"), ("error", "str"),
    ("rank", "int"), ("hostname", "str"), ("cores", "str"), ("cpus_seen", "str"),
    ("prompt_format", "str"), ("load_s", "float"), ("runner_start_s", "float"), ("prompt_tokens", "int"),
    ("generated_tokens", "int"), ("finish_reason", "str"), ("ttft_s", "float"),
    ("prefill_tok_s", "float"), ("decode_tok_s", "float"), ("tpot_s", "float"),
    ("itl_median_s", "float"), ("itl_max_s", "float"), ("e2e_s", "float"),
    ("cpu_user_s", "float"), ("cpu_sys_s", "float"), ("peak_rss_bytes", "int"),
    ("llama_prompt_ms", "float"), ("llama_eval_ms", "float"), ("llama_prompt_n", "int"),
    ("llama_eval_n", "int"), ("started_unix", "float"),
    ("system_info", "str"), ("engine_library", "str"), ("engine_library_sha256", "str"), ("engine_compiler", "str"),
    ("engine_fix", "str"), ("engine_variant", "str"), ("engine_extra_bufts", "int"),
    ("engine_weight_buffers", "str"), ("preflight", "str"), ("engine_fallback", "int"), ("preflight_s", "float"),
    ("model_desc", "str"), ("model_bytes", "int"), ("synthetic", "int"), ("model_params", "int"),
    ("involuntary_switches", "int"), ("other_cpu_s", "float"), ("steal_s", "float"), ("contention_share", "float"),
    ("contended", "int"),
)

RESULT_DEFINITIONS = {
    "kind": "query (a chat prompt, answered) or bench (llama-bench's pp N / tg N with synthetic tokens)",
    "prompt_id": "the prompt's id; for bench tasks the test: ppN (N prompt tokens in one batch) or tgN (N tokens one at a time)",
    "warmup": "1 for a warmup run: recorded, never counted in statistics (repetition is then negative)",
    "load_s": "seconds to load the model in this task's runner (once per runner, repeated on each of its tasks)",
    "runner_start_s": "seconds from starting this task's runner process to its model being ready: process start, "
                      "llama.cpp import, model load and context (once per runner, repeated on each of its tasks)",
    "ttft_s": "time to first token: request start to first generated token, prefill included",
    "prefill_tok_s": "prompt tokens / TTFT",
    "decode_tok_s": "(generated tokens - 1) / (last token time - first token time)",
    "tpot_s": "time per output token: (e2e - TTFT) / (generated tokens - 1)",
    "itl_median_s": "median inter-token latency (gap between consecutive tokens)",
    "itl_max_s": "largest inter-token latency",
    "e2e_s": "request start to end of generation",
    "cpu_user_s": "user CPU seconds of the runner process during the task",
    "cpu_sys_s": "system CPU seconds of the runner process during the task",
    "peak_rss_bytes": "peak resident memory of the runner process so far",
    "llama_prompt_ms": "llama.cpp's own prompt-eval time (cross-check of TTFT)",
    "llama_eval_ms": "llama.cpp's own token-eval time (cross-check of the decode)",
    "cores": "CPUs the runner was pinned to",
    "cpus_seen": "CPUs the runner's threads were last seen on after the task (/proc)",
    "involuntary_switches": "times the runner's threads were preempted during the task (getrusage ru_nivcsw)",
    "other_cpu_s": "CPU seconds other processes used on the task's pinned cores during the task: the cores' busy "
                   "time in /proc/stat minus the runner's own CPU time (clock-tick resolution, per core)",
    "steal_s": "seconds the hypervisor gave the pinned cores' vCPUs to other guests during the task (/proc/stat)",
    "contention_share": "(other_cpu_s + steal_s) / (task time x pinned cores): the share of the cores' time "
                        "that other work took",
    "contended": "1 when contention_share > 0.10 and other work exceeds 2 clock ticks a core (mpibench/contention.py): "
                 "the measurement shared its cores; --exclude-contended leaves it out of the statistics",
    "status": "ok, failed, timeout, or not_run (no engine configuration passed the preflight: error says why)",
    "system_info": "llama.cpp's system_info in the task's runner: the features of the CPU backend it loaded",
    "engine_library": "the llama.cpp CPU backend library the runner loaded",
    "engine_library_sha256": "sha256 of engine_library",
    "engine_compiler": "the compiler that built engine_library (its ELF .comment)",
    "engine_fix": "amx-tilecfg when engine_library was built with launch/setup.sh's AMX tile-config header fix",
    "engine_variant": "the CPU variant of a portable build the runner loaded (empty: a plain build)",
    "engine_extra_bufts": "1: llama.cpp's extra buffer types on (AMX, CPU_REPACK), 0: off (a preflight fallback)",
    "engine_weight_buffers": "the buffer types the weights went to, from llama.cpp's load log (CPU_Mapped, "
                             "CPU_REPACK, AMX, ...)",
    "preflight": "the engine preflight's attempts on this worker, each with its outcome or fatal signal",
    "engine_fallback": "1 when the first engine configuration died in preflight and a fallback ran",
    "model_desc": "llama.cpp's description of the model, as the task's runner loaded it",
    "model_bytes": "llama.cpp's size of the model's tensors in bytes, as the task's runner loaded it",
    "model_params": "llama.cpp's parameter count of the model (llama_model_n_params), as the task's runner loaded it",
    "synthetic": "1 when the task's model is synthetic (mpibench synth: real shape, random weights): timing only",
    "preflight_s": "seconds of the preflight (a 32-token batch, then 4 single tokens), on the tasks of the "
                   "runner that ran it",
}

HOST_COLUMNS = (
    ("hostname", "str"), ("cpu_model", "str"), ("logical_cpus", "int"), ("physical_cores", "int"),
    ("memory_bytes", "int"), ("kernel", "str"), ("governor", "str"), ("smt", "str"), ("cpus", "str"),
    ("simd", "str"), ("llama_system_info", "str"), ("simd_mismatch", "str"),
    ("sockets", "int"), ("numa_nodes", "int"), ("l1d_bytes", "int"), ("l1i_bytes", "int"), ("l2_bytes", "int"),
    ("l3_bytes", "int"), ("boost", "str"), ("thp", "str"),
)
HOST_DEFINITIONS = {
    "sockets": "physical CPU packages among the online CPUs (0: sysfs did not say)",
    "numa_nodes": "NUMA nodes online (0: sysfs did not say)",
    "l1d_bytes": "size of one L1 data cache instance, as cpu0 sees it (sysfs cache/index*; 0: unknown)",
    "l1i_bytes": "size of one L1 instruction cache instance, as cpu0 sees it",
    "l2_bytes": "size of one L2 cache instance, as cpu0 sees it",
    "l3_bytes": "size of one L3 cache instance (shared by several cores), as cpu0 sees it",
    "governor": "cpufreq scaling governor of cpu0 (unknown: no cpufreq, e.g. in a VM)",
    "boost": "turbo/boost: on, off or unknown (intel_pstate/no_turbo, cpufreq/boost)",
    "smt": "simultaneous multithreading control (/sys/devices/system/cpu/smt/control)",
    "thp": "transparent huge pages mode (/sys/kernel/mm/transparent_hugepage/enabled)",
    "cpus": "the CPUs this job's ranks were bound to on the host (the cores its tasks could use)",
    "simd": "SIMD features of the host's CPU, in llama.cpp's names (from /proc/cpuinfo)",
    "llama_system_info": "llama.cpp's system_info as the host's runners reported it: the build's features",
    "simd_mismatch": "features of the CPU the build leaves unused, or build features the CPU lacks",
}
WORKER_COLUMNS = (("rank", "int"), ("hostname", "str"), ("pid", "int"), ("cpus", "str"))
MODEL_COLUMNS = (
    ("name", "str"), ("path", "str"), ("size_bytes", "int"), ("mtime", "float"),
    ("architecture", "str"), ("quantization", "str"), ("parameters", "int"),
    ("context_length", "int"), ("has_chat_template", "int"), ("prompt_format", "str"),
    ("llama_desc", "str"), ("llama_bytes", "int"), ("synthetic", "int"), ("sha256", "str"),
    ("n_layers", "int"), ("n_kv_heads", "int"), ("key_length", "int"), ("value_length", "int"),
)
MODEL_DEFINITIONS = {
    "synthetic": "1: a synthetic file (GGUF key mpibench.synthetic, written by mpibench synth): a real model's shape "
                 "with random weights, for timing only; its answers are meaningless and never scored",
    "sha256": "sha256 of the model file where known: recorded when a synthetic model was generated into the cache",
    "n_layers": "transformer blocks ({arch}.block_count in the GGUF header; 0: not given)",
    "n_kv_heads": "key/value heads per layer ({arch}.attention.head_count_kv, else head_count; 0: not given)",
    "key_length": "elements of one key head ({arch}.attention.key_length, else embedding_length / head_count)",
    "value_length": "elements of one value head ({arch}.attention.value_length, else embedding_length / head_count)",
}
PROMPT_COLUMNS = (("id", "str"), ("category", "str"), ("text", "str"))

# The read-bandwidth probe (mpibench/bandwidth.py): one row per launch, host and thread count.
BANDWIDTH_COLUMNS = (
    ("hostname", "str"), ("threads", "int"), ("cores", "str"), ("gb_per_s", "float"), ("repeats", "int"),
    ("cv", "float"), ("method", "str"), ("working_set_bytes", "int"), ("probed_unix", "float"),
)
BANDWIDTH_DEFINITIONS = {
    "threads": "threads reading at once, one pinned to each of `cores` (the cores a task of that count gets)",
    "cores": "the CPUs the probe's threads were pinned to, one thread each",
    "gb_per_s": "read bandwidth, 1e9 bytes/s: working set / (last thread's end - first thread's start), the median "
                "of the last repeats (the stable window)",
    "repeats": "timed passes over the working set, until the window's CV fell under the bound or the cap was hit",
    "cv": "coefficient of variation of the window's bandwidths (stdev / mean)",
    "method": "the read kernel: numpy-sum-f64 = numpy's sum of float64 values, each thread over its own slice, "
              "allocated and first touched by that thread",
    "working_set_bytes": "bytes read per pass, all threads together (well above the node's last-level cache)",
    "probed_unix": "when the probe ran (Unix seconds)",
}

# Derived at every snapshot (store/hdf5.py, mpibench/roofline.py) from the journal, the models and the bandwidth
# table; never journalled. NaN where a task has no decode, its model no KV shape, or its host and threads no probe.
ROOFLINE_COLUMNS = (("bytes_per_token", "float"), ("roofline_tok_s", "float"), ("roofline_fraction", "float"))
ROOFLINE_DEFINITIONS = {
    "bytes_per_token": "bytes read per decoded token: model_bytes (llama.cpp's tensor size, the token-embedding "
                       "table counted whole) + the f16 KV cache read at each decoded position (n_layers x n_kv_heads "
                       "x (key_length + value_length) x 2 bytes per cached token), averaged over the task's "
                       "decoded positions",
    "roofline_tok_s": "the memory roofline of decode: gb_per_s of the task's host at its thread count (the latest "
                      "probe before the task) x 1e9 / bytes_per_token",
    "roofline_fraction": "decode_tok_s / roofline_tok_s: the share of the memory bound the decode reached",
}

# Added without a version bump (no existing table changed): files without them simply have no scores.
SCORE_COLUMNS = (("task_id", "str"), ("scorer", "str"), ("scorer_version", "str"), ("score", "float"),
                 ("rationale", "str"))
SCORER_COLUMNS = (("scorer", "str"), ("scorer_version", "str"), ("scored_at", "str"), ("details_json", "str"))
SCORE_DEFINITIONS = {
    "scorer": "rubric, judge:<model> or human[:<grader>]",
    "score": "1 (worst) to 10 (best); NaN when the scorer gave no usable score (the rationale says why)",
    "rationale": "why: the rubric's criteria, the judge's answer, or the grader's comment",
}

# Load runs (mpibench load, mpibench/load/metrics.py). Times *_ns are ns from the load point's t0 (CLOCK_MONOTONIC
# on its node), -1 where the request never got there; seconds are floats, NaN where undefined.
REQUEST_COLUMNS = (
    ("point", "int"), ("request", "int"), ("user", "int"), ("runner", "int"), ("prompt_id", "str"), ("phase", "str"),
    ("status", "str"), ("error", "str"), ("intended_ns", "int"), ("dispatch_ns", "int"), ("admit_ns", "int"),
    ("first_token_ns", "int"), ("end_ns", "int"), ("prompt_tokens", "int"), ("generated_tokens", "int"),
    ("ttft_s", "float"), ("e2e_s", "float"), ("queue_s", "float"), ("service_ttft_s", "float"), ("tpot_s", "float"),
    ("itl_median_s", "float"), ("dispatch_lag_s", "float"), ("replica", "int"),
)
REQUEST_DEFINITIONS = {
    "point": "the load point (load_points.point) the request belongs to",
    "request": "the request's number within its point, in the order of intended starts",
    "user": "closed loop: the user that sent it; open loop: -1",
    "runner": "which of the point's P runners served it (0 .. P - 1); -1: none did",
    "phase": "where its intended start lies: ramp_up, warmup, steady (the measured window) or cooldown",
    "status": "ok, failed, or not_run (still queued when the drain ended); failed and not_run miss every SLO",
    "prompt_id": "the study prompt it asked (fixed workloads: fixed)",
    "error": "why it failed",
    "prompt_tokens": "tokens of its prompt, as the runner counted them",
    "generated_tokens": "tokens it generated",
    "intended_ns": "when the schedule meant it to start (open loop: its arrival; closed loop: its user's previous "
                   "end plus think time): latencies count from here, free of coordinated omission",
    "dispatch_ns": "when the generator issued it (into its queue when every slot was busy)",
    "admit_ns": "when a runner began it (its prefill)",
    "first_token_ns": "when its first token was generated",
    "end_ns": "when it ended (its last token, or its failure)",
    "ttft_s": "time to first token from the intended start: first_token - intended (ok requests; queueing included)",
    "e2e_s": "end-to-end from the intended start: end - intended (ok requests)",
    "queue_s": "waiting before a runner began it: admit - intended",
    "service_ttft_s": "time to first token once admitted: first_token - admit (ok requests; prefill only)",
    "tpot_s": "time per output token: (last token - first token) / (generated tokens - 1) (ok requests)",
    "itl_median_s": "median gap between its consecutive tokens (ok requests)",
    "dispatch_lag_s": "how late the generator issued it: dispatch - intended",
    "replica": "which of its point's replicas (nodes) sent it; its times are that node's, from the shared t0",
}
LOAD_LATENCIES = ("ttft", "tpot", "itl", "e2e", "queue")  # each with LOAD_QUANTILES in load_points
LOAD_QUANTILES = (("p50", 0.50), ("p90", 0.90), ("p95", 0.95), ("p99", 0.99))
_LATENCY_SOURCES = {"ttft": "TTFT (ttft_s) of its ok requests", "tpot": "TPOT (tpot_s) of its ok requests",
                    "itl": "every inter-token gap of its ok requests, pooled", "e2e": "e2e_s of its ok requests",
                    "queue": "queue_s of its admitted requests"}
LOAD_POINT_COLUMNS = (
    ("point", "int"), ("server", "str"), ("load", "str"), ("partitions", "int"), ("slots", "int"), ("threads", "int"),
    ("kv_unified", "int"), ("mode", "str"), ("users", "int"), ("think", "str"), ("think_s", "float"),
    ("rate", "float"), ("arrivals", "str"), ("gamma_shape", "float"), ("max_concurrency", "int"),
    ("workload", "str"), ("model", "str"), ("synthetic", "int"), ("n_ctx", "int"), ("seed", "int"),
    ("cores", "str"), ("generator_core", "int"), ("replicas", "int"), ("ramp_up_s", "float"), ("warmup_s", "float"),
    ("cooldown_s", "float"), ("drain_s", "float"), ("hostname", "str"), ("started_unix", "float"),
    ("runners_json", "str"), ("error", "str"), ("duration_s", "float"), ("window_s", "float"), ("requests", "int"),
    ("completed", "int"), ("failed", "int"), ("not_run", "int"), ("offered_rps", "float"), ("arrival_rps", "float"),
    ("achieved_rps", "float"), ("completed_rps", "float"), ("output_tok_s", "float"), ("total_tok_s", "float"),
    ("mean_concurrency", "float"), ("littles_concurrency", "float"), ("littles_error", "float"),
    *((f"{m}_{q}{end}_s", "float") for m in LOAD_LATENCIES for q, _ in LOAD_QUANTILES for end in ("", "_lo", "_hi")),
    ("slo_ttft_s", "float"), ("slo_tpot_s", "float"), ("slo_e2e_s", "float"), ("goodput_rps", "float"),
    ("goodput_share", "float"), ("apdex", "float"), ("apdex_t_s", "float"), ("queue_slope", "float"),
    ("stable", "int"), ("valid", "int"), ("invalid_reasons", "str"), ("knee", "int"),
    ("dispatch_lag_p99_s", "float"), ("generator_cpu_s", "float"),
)
LOAD_POINT_DEFINITIONS = {
    "point": "the load point's index in the run",
    "server": "the server configuration, PxSxT: P runners on disjoint cores, each batching up to S sequences with "
              "T threads",
    "load": "the load in words: N users (with their think time), or the rate, arrivals and concurrency cap",
    "partitions": "P: independent runners on disjoint cores",
    "slots": "S: sequences each runner decodes at once (continuous batching; 1: one at a time)",
    "threads": "T: threads (cores) of each runner",
    "kv_unified": "1: each runner's sequences share one KV buffer (llama.cpp's kv_unified)",
    "mode": "closed (users send, wait for the end, think, send again) or open (arrivals at a rate)",
    "users": "closed loop: concurrent users, each with one request in the system or thinking",
    "think_s": "closed loop: the mean think time, seconds",
    "think": "closed loop: none, constant or exponential think time between a user's requests",
    "rate": "open loop: the arrival rate asked, requests/s",
    "arrivals": "open loop: constant, poisson or gamma inter-arrival times (seeded)",
    "gamma_shape": "gamma arrivals: shape k (inter-arrival CV = 1/sqrt(k))",
    "max_concurrency": "open loop: at most this many requests in the runners at once (0: no cap); arrivals over it "
                       "wait in the generator's queue",
    "workload": "what each request asked: the study prompts answered up to N tokens, or fixed prompt + generated "
                "token counts with end-of-sequence ignored",
    "model": "the model's name",
    "synthetic": "1 when the model is synthetic (mpibench synth): timing only",
    "n_ctx": "context tokens per sequence",
    "seed": "the seed of the schedule, think times and sampling (replica r used seed + r)",
    "hostname": "the node the point ran on (its replicas' nodes, comma-separated)",
    "replicas": "nodes that ran the point at once from a shared t0, each under the load asked (users, rate), "
                "their requests pooled: rates, throughput and concurrency are their sums",
    "started_unix": "wall-clock time of the point's t0 (Unix seconds; replicas: the earliest node's)",
    "cores": "the CPUs of the point's runners (replica 0's)",
    "generator_core": "the CPU the load generator ran on (no runner's)",
    "ramp_up_s": "seconds from t0 over which the load rose (closed: users started spread over it; open: the rate "
                 "rose linearly)",
    "warmup_s": "seconds of load after the ramp-up, before the measured window",
    "cooldown_s": "seconds of load after the window, so that the window's last requests met a loaded server",
    "drain_s": "the longest the requests in the system were waited for after the load stopped",
    "runners_json": "each runner's Ready message: slots, context, KV layout, model, CPUs, engine_variant, "
                    "engine_extra_bufts, engine_weight_buffers; with its hostname, its model's preflight and "
                    "engine_fallback",
    "error": "why the point did not run (a runner failed to start); empty when it ran",
    "duration_s": "the steady window asked, seconds",
    "window_s": "the steady window measured: from its start (ramp-up + warm-up) to the earlier of its asked end and "
                "the time the load stopped (every runner failed; 0 s when the point did not run). Every request-based column counts the requests whose intended start lies in it "
                "(requests of the window that end after it still count)",
    "requests": "requests whose intended start lies in the window, whatever became of them",
    "completed": "of them, ok",
    "failed": "of them, failed",
    "not_run": "of them, still queued when the drain ended",
    "offered_rps": "open loop: the rate asked, times the replicas; closed loop: NaN",
    "arrival_rps": "requests / window_s: the arrival rate (open loop: what the seeded schedule placed in the window, "
                   "which differs from offered_rps by the schedule's own randomness)",
    "achieved_rps": "requests of the window the generator issued before the window ended, per second of it",
    "completed_rps": "completed / window_s",
    "output_tok_s": "tokens generated within the window (by any request) / window_s",
    "total_tok_s": "(tokens generated within the window + prompt tokens of the requests whose first token came "
                   "within it) / window_s",
    "mean_concurrency": "time average over the window of the requests in the system (from intended start to end; a "
                        "request never ended stays until the point's end)",
    "littles_concurrency": "Little's law: arrival_rps x the mean time in the system of the window's requests",
    "littles_error": "littles_concurrency / mean_concurrency - 1",
    "slo_ttft_s": "the TTFT objective (NaN: none)",
    "slo_tpot_s": "the TPOT objective (NaN: none)",
    "slo_e2e_s": "the end-to-end objective (NaN: none)",
    "goodput_rps": "requests of the window that completed within every objective given, per second of it",
    "goodput_share": "those requests / requests (failed and not_run count as misses)",
    "apdex": "APDEX on TTFT: (satisfied + tolerating / 2) / requests; satisfied: ok with TTFT <= apdex_t_s, "
             "tolerating: ok with TTFT <= 4 apdex_t_s, the rest (failed and not_run too) frustrated; NaN without "
             "a TTFT objective",
    "apdex_t_s": "APDEX's T: the TTFT objective",
    "queue_slope": "least-squares slope of the requests queued (arrived, not yet admitted) at the ends of the "
                   "timeline's 1-second bins within the window, requests per second; NaN with fewer than 2 bins",
    "stable": "1 when the queue does not keep growing: queue_slope x window_s is at most 1 request or at most 5 % "
              "of the window's requests; 0 otherwise or when queue_slope is NaN",
    "valid": "1 when the point breaks no validity rule (invalid_reasons); invalid points are left out of the knee",
    "invalid_reasons": "the validity rules the point broke, separated by '; ': a window shorter than asked; fewer "
                       "than 300 completions (its p99 columns are then NaN); open loop: achieved_rps not within 1 % "
                       "of arrival_rps; dispatch_lag_p99_s over 1 ms; the point did not run",
    "knee": "1 on the point of largest achieved_rps among its server configuration's (and model's and workload's) "
            "stable, valid points whose goodput_share is at least 0.95",
    "dispatch_lag_p99_s": "p99 (nearest rank) of dispatch_lag_s over the window's dispatched requests",
    "generator_cpu_s": "CPU seconds the load generator used over the whole point (its replicas' summed)",
} | {f"{m}_{q}{end}_s": (f"{q} (nearest rank) of the {_LATENCY_SOURCES[m]} in the window" if not end else
                          f"{'lower' if end == '_lo' else 'upper'} end of the distribution-free 95 % interval of "
                          f"{m}_{q}_s (binomial order statistics, stats.quantile_ci_ranks; NaN with too few samples). It "
                          "takes the samples as independent: under queueing, neighbouring requests' latencies "
                          "correlate and the interval is narrower than the truth")
     for m in LOAD_LATENCIES for q, _ in LOAD_QUANTILES for end in ("", "_lo", "_hi")}
TIMELINE_COLUMNS = (
    ("point", "int"), ("t_s", "float"), ("arrived", "int"), ("admitted", "int"), ("completed", "int"),
    ("output_tokens", "int"), ("in_system", "int"), ("queued", "int"),
)
TIMELINE_DEFINITIONS = {
    "point": "the load point (load_points.point)",
    "t_s": "the 1-second bin's start, seconds from the point's t0 (bins cover the whole point, all phases)",
    "arrived": "requests whose intended start lies in the bin",
    "admitted": "requests a runner began in the bin",
    "completed": "ok requests that ended in the bin",
    "output_tokens": "tokens generated in the bin",
    "in_system": "requests in the system at the bin's end: arrived before it, not yet ended",
    "queued": "requests queued at the bin's end: arrived before it, not yet admitted nor ended",
}
REQUEST_TOKEN_DEFINITION = "time of each generated token of the requests row of the same index, ns from its point's t0"

KIND_DEFAULTS = {"str": "", "int": 0, "float": float("nan")}
# Every result column's default: the empty value of its kind, except kind "query" (which rows from before
# the kind column were). The one place a default is decided; readers and protocol.Result take it from here.
RESULT_DEFAULTS = {name: KIND_DEFAULTS[kind] for name, kind in RESULT_COLUMNS} | {"kind": "query"}


def empty_result(**known) -> dict:
    """A result row with every column present, defaulted, then `known`."""
    return {**RESULT_DEFAULTS, **known}
