"""Columns of the results file's tables: one list, shared by the writer, the reader and the runner."""

from __future__ import annotations

SCHEMA_VERSION = 5  # 2: hosts gained simd, llama_system_info, simd_mismatch, sockets, numa_nodes, caches, boost,
# thp; models gained llama_desc, llama_bytes; root attribute launch_json; results gained kind, warmup and
# runner_start_s. 3: results gained the engine configuration (engine_*, system_info, preflight*) and the
# status "not_run" (readers default what an early file lacks). 4: results gained model_desc and model_bytes;
# root attribute launches_json (every launch of a resumed run, with its hosts and software). 5 (synth): models
# gained synthetic and sha256, results gained synthetic and model_params (readers default 0 and "")

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
)
MODEL_DEFINITIONS = {
    "synthetic": "1: a synthetic file (GGUF key mpibench.synthetic, written by mpibench synth): a real model's shape "
                 "with random weights, for timing only; its answers are meaningless and never scored",
    "sha256": "sha256 of the model file where known: recorded when a synthetic model was generated into the cache",
}
PROMPT_COLUMNS = (("id", "str"), ("category", "str"), ("text", "str"))

# Added without a version bump (no existing table changed): files without them simply have no scores.
SCORE_COLUMNS = (("task_id", "str"), ("scorer", "str"), ("scorer_version", "str"), ("score", "float"),
                 ("rationale", "str"))
SCORER_COLUMNS = (("scorer", "str"), ("scorer_version", "str"), ("scored_at", "str"), ("details_json", "str"))
SCORE_DEFINITIONS = {
    "scorer": "rubric, judge:<model> or human[:<grader>]",
    "score": "1 (worst) to 10 (best); NaN when the scorer gave no usable score (the rationale says why)",
    "rationale": "why: the rubric's criteria, the judge's answer, or the grader's comment",
}


KIND_DEFAULTS = {"str": "", "int": 0, "float": float("nan")}
# Every result column's default: the empty value of its kind, except kind "query" (which rows from before
# the kind column were). The one place a default is decided; readers and protocol.Result take it from here.
RESULT_DEFAULTS = {name: KIND_DEFAULTS[kind] for name, kind in RESULT_COLUMNS} | {"kind": "query"}


def empty_result(**known) -> dict:
    """A result row with every column present, defaulted, then `known`."""
    return {**RESULT_DEFAULTS, **known}
