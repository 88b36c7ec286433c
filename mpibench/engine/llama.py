"""llama.cpp through llama-cpp-python's C API bindings: load a model once, then time generations and tests.

The only module that imports llama_cpp. Import it only after the process is pinned and its OpenMP
environment is set (runner.py does that), so llama.cpp's thread pool starts on the right cores.

The timed loops call llama.cpp directly (llama_decode, a greedy sampler chain in C), as llama-bench does:
per token, Python only takes a timestamp and checks for an end-of-generation token. Tokenisation, chat
templating and detokenisation happen outside the timed region. BatchedEngine (load tests) runs many requests
at once in one context by continuous batching, with the same prompts, greedy sampling and stop rules.
"""

from __future__ import annotations

import ctypes
import heapq
import random
import re
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import llama_cpp
from llama_cpp.llama_chat_format import Jinja2ChatFormatter

from mpibench.engine.build import cpu_variants, variant_name
from mpibench.preflight import AMX_VARIANTS

CHAT = "chat"
N_BATCH, N_UBATCH = 2048, 512  # llama-bench's defaults
LIB_DIR = Path(llama_cpp.__file__).parent / "lib"
WEIGHT_BUFFER = re.compile(r"^load_tensors:\s+(\S+) model buffer size")
LOAD_ERROR = re.compile(r"error|failed", re.IGNORECASE)


def load_cpu_backend(avoid_amx: bool) -> tuple[Path, str]:
    """Load the CPU backend and return its library and variant ("" for a plain build): for a portable build
    the best variant this CPU runs (as ggml would choose, by each plugin's score), without the AMX ones
    when `avoid_amx`."""
    libggml, variants = LIB_DIR / "libggml.so.0", cpu_variants(LIB_DIR)  # the libggml copy libllama links to
    ggml = ctypes.CDLL(str(libggml)) if libggml.exists() else None
    if ggml is None or ggml.ggml_backend_reg_count() > 0 or not variants:
        return LIB_DIR / "libggml-cpu.so", ""  # built in
    candidates = [p for p in variants if not (avoid_amx and variant_name(p) in AMX_VARIANTS)]
    scores = {p: ctypes.CDLL(str(p)).ggml_backend_score() for p in candidates}
    best = max(scores, key=scores.get, default=None)
    if best is None or scores[best] <= 0:
        raise ValueError(f"no CPU variant of this llama.cpp build runs on this CPU ({', '.join(map(str, variants))})")
    ggml.ggml_backend_load.restype = ctypes.c_void_p
    if not ggml.ggml_backend_load(str(best).encode()):
        raise ValueError(f"ggml could not load its CPU backend {best}")
    return best, variant_name(best)


class LoadLog:
    """llama.cpp's log, passed on to stderr as before, and kept while a model loads: its lines name the
    buffer types the weights went to (CPU_Mapped, CPU_REPACK, AMX)."""

    def __init__(self):
        self.lines: list[str] | None = None
        self.callback = llama_cpp.llama_log_callback(self._log)  # kept referenced while llama.cpp holds it
        llama_cpp.llama_log_set(self.callback, ctypes.c_void_p(0))

    def _log(self, level, text, user_data) -> None:
        line = text.decode("utf-8", errors="replace")
        sys.stderr.write(line)
        if self.lines is not None:
            self.lines.append(line)

    def weight_buffers(self) -> list[str]:
        found = [m.group(1) for line in "".join(self.lines or []).splitlines() if (m := WEIGHT_BUFFER.match(line))]
        return list(dict.fromkeys(found))

    def errors(self) -> list[str]:
        """The lines that say why a load failed ("error loading model: ...", "failed to load model")."""
        return [line.strip() for line in "".join(self.lines or []).splitlines() if LOAD_ERROR.search(line)]


llama_cpp.llama_backend_init()
LOG = LoadLog()


@dataclass(frozen=True)
class Generation:
    prompt_tokens: int
    token_ns: list[int]  # arrival of each generated token, ns since the request started
    end_ns: int
    answer: str
    finish_reason: str  # "stop" (end-of-generation token or completion stop text) or "length" (max_tokens)
    llama_prompt_ms: float
    llama_eval_ms: float
    llama_prompt_n: int
    llama_eval_n: int


class LlamaEngine:
    """One model, loaded once, and one context, made anew when a task needs another size."""

    def __init__(self, model_path: str, threads: int, n_ctx: int, seed: int, prompt_format: str,
                 extra_bufts: bool = True):
        params = llama_cpp.llama_model_default_params()
        params.use_extra_bufts = extra_bufts  # off: no AMX or CPU_REPACK weight buffers (preflight's fallback)
        LOG.lines = []
        try:
            self.model = llama_cpp.llama_model_load_from_file(model_path.encode(), params)
            self.weight_buffers, errors = LOG.weight_buffers(), LOG.errors()
        finally:
            LOG.lines = None
        if not self.model:  # its log's error lines are the reason, kept with every task of the model
            raise ValueError(f"llama.cpp could not load {model_path}: {' / '.join(errors) or 'it logged no error'}")
        self.vocab = llama_cpp.llama_model_get_vocab(self.model)
        self.threads, self.n_ctx, self.prompt_format = threads, n_ctx, prompt_format
        self.random = random.Random(seed)
        self.context, self.context_size = None, None
        self._context(n_ctx)  # allocated with the model, not in the first task's time
        self.sampler = llama_cpp.llama_sampler_chain_init(llama_cpp.llama_sampler_chain_default_params())
        llama_cpp.llama_sampler_chain_add(self.sampler, llama_cpp.llama_sampler_init_greedy())
        self._chat = None
        self._stop = b""
        self._prompt_tokens: dict[str, list[int]] = {}
        if prompt_format == CHAT:
            template = llama_cpp.llama_model_chat_template(self.model, None)
            if not template:
                raise ValueError(f"{model_path} has no chat template; give the model a prompt_format")
            self._chat = Jinja2ChatFormatter(  # a sandboxed Jinja environment: templates cannot run code
                template=template.decode("utf-8"),
                eos_token=self._token_text(llama_cpp.llama_vocab_eos(self.vocab)),
                bos_token=self._token_text(llama_cpp.llama_vocab_bos(self.vocab)),
            )
        else:  # a base model goes on with the next "Question:": stop there
            lead = prompt_format.split("{prompt}", 1)[0].strip()
            self._stop = ("\n" + lead).encode("utf-8") if lead else b""

    def description(self) -> tuple[str, int, int]:
        """llama.cpp's own name for the model (as llama-bench prints it), its tensors' size in bytes and its
        parameter count."""
        buffer = ctypes.create_string_buffer(256)
        llama_cpp.llama_model_desc(self.model, buffer, len(buffer))
        return (buffer.value.decode("utf-8", errors="replace"), llama_cpp.llama_model_size(self.model),
                llama_cpp.llama_model_n_params(self.model))

    @staticmethod
    def system_info() -> str:
        return llama_cpp.llama_print_system_info().decode("utf-8", errors="replace").strip()

    def _token_text(self, token: int) -> str:
        return llama_cpp.llama_vocab_get_text(self.vocab, token).decode("utf-8", errors="replace") if token >= 0 else ""

    def _context_params(self, n_ctx: int):
        params = llama_cpp.llama_context_default_params()
        params.n_ctx, params.n_batch, params.n_ubatch = n_ctx, N_BATCH, N_UBATCH
        params.n_threads = params.n_threads_batch = self.threads
        params.no_perf = False
        return params

    def _context(self, n_ctx: int):
        """A context of n_ctx tokens with an empty KV cache. Only one context lives at a time, as in
        llama-bench (an idle second one cost pp speed in-process; README, fidelity)."""
        if self.context_size != n_ctx:
            if self.context:
                llama_cpp.llama_free(self.context)
            self.context_size = None  # until the new one exists
            self.context = llama_cpp.llama_init_from_model(self.model, self._context_params(n_ctx))
            if not self.context:
                raise ValueError(f"llama.cpp could not create a context of {n_ctx} tokens")
            self.context_size = n_ctx
        llama_cpp.llama_memory_clear(llama_cpp.llama_get_memory(self.context), False)  # empty KV cache (cells; as llama-bench)
        llama_cpp.llama_perf_context_reset(self.context)
        return self.context

    def tokenize(self, text: str, add_special: bool, parse_special: bool) -> list[int]:
        data = text.encode("utf-8")
        room = len(data) + 8
        tokens = (llama_cpp.llama_token * room)()
        n = llama_cpp.llama_tokenize(self.vocab, data, len(data), tokens, room, add_special, parse_special)
        if n < 0:
            raise ValueError(f"could not tokenize a prompt of {len(data)} bytes")
        return tokens[:n]

    def detokenize(self, tokens: list[int]) -> bytes:
        buffer = ctypes.create_string_buffer(256)
        pieces = []
        for token in tokens:
            n = llama_cpp.llama_token_to_piece(self.vocab, token, buffer, len(buffer), 0, False)
            pieces.append(buffer.raw[: max(n, 0)])
        return b"".join(pieces)

    def _tail(self, tail: bytes, token: int) -> bytes:
        """The last bytes generated after `token`, enough to see the completion stop text."""
        piece = self.detokenize([token])
        return (tail + piece)[-(len(self._stop) + len(piece)):]

    def answer(self, generated: list[int]) -> str:
        """The generated tokens' text, up to the completion stop text."""
        text = self.detokenize(generated)
        if self._stop and self._stop in text:
            text = text[: text.index(self._stop)]
        return text.decode("utf-8", errors="replace")

    def random_tokens(self, n: int) -> list[int]:
        """n random tokens from the engine's seeded generator, led by BOS when the model adds one (llama-bench's
        synthetic prompt)."""
        n_vocab = llama_cpp.llama_vocab_n_tokens(self.vocab)
        first = llama_cpp.llama_vocab_bos(self.vocab) if llama_cpp.llama_vocab_get_add_bos(self.vocab) else None
        ids = [self.random.randrange(n_vocab) for _ in range(n)]
        if first is not None and ids:
            ids[0] = first
        return ids

    def tokens_for(self, prompt: str) -> list[int]:
        """The prompt's tokens, templated; kept per prompt, since a sweep asks the same prompts again and
        templating and tokenizing would otherwise lie between every two measured requests."""
        if prompt not in self._prompt_tokens:
            if self._chat is not None:
                text = self._chat(messages=[{"role": "user", "content": prompt}]).prompt
                tokens = self.tokenize(text, add_special=False, parse_special=True)
            else:
                tokens = self.tokenize(self.prompt_format.replace("{prompt}", prompt), add_special=True,
                                       parse_special=False)
            self._prompt_tokens[prompt] = tokens
        return self._prompt_tokens[prompt]

    def _decode(self, context, tokens, n: int) -> None:
        if llama_cpp.llama_decode(context, llama_cpp.llama_batch_get_one(tokens, n)) != 0:
            raise RuntimeError("llama_decode failed")

    @staticmethod
    def _perf(context) -> tuple[float, float, int, int]:
        perf = llama_cpp.llama_perf_context(context)
        return perf.t_p_eval_ms, perf.t_eval_ms, perf.n_p_eval, perf.n_eval

    def generate(self, prompt: str, max_tokens: int) -> Generation:
        """Greedy generation from an empty KV cache."""
        prompt_tokens = self.tokens_for(prompt)
        budget = min(max_tokens, self.n_ctx - len(prompt_tokens))
        if budget < 1:
            raise ValueError(f"the prompt has {len(prompt_tokens)} tokens; it does not fit n_ctx={self.n_ctx}")
        context = self._context(self.n_ctx)
        llama_cpp.llama_sampler_reset(self.sampler)
        batch = (llama_cpp.llama_token * len(prompt_tokens))(*prompt_tokens)
        token = (llama_cpp.llama_token * 1)()
        generated: list[int] = []
        stamps: list[int] = []
        tail = b""  # the last bytes generated, enough to see the completion stop text
        finish = "length"
        clock = time.perf_counter_ns
        start = clock()
        self._decode(context, batch, len(prompt_tokens))
        for _ in range(budget):
            token[0] = llama_cpp.llama_sampler_sample(self.sampler, context, -1)
            stamps.append(clock() - start)
            if llama_cpp.llama_vocab_is_eog(self.vocab, token[0]):
                stamps.pop()
                finish = "stop"
                break
            generated.append(token[0])
            if self._stop:
                tail = self._tail(tail, token[0])
                if self._stop in tail:
                    finish = "stop"
                    break
            if len(generated) == budget:
                break
            self._decode(context, token, 1)
        end = clock() - start
        return Generation(len(prompt_tokens), stamps, end, self.answer(generated), finish, *self._perf(context))

    def bench(self, n_prompt: int, n_gen: int) -> Generation:
        """llama-bench's test: n_prompt synthetic tokens in batches of N_BATCH (pp), or n_gen synthetic
        tokens decoded one at a time (tg), from an empty KV cache in a context of n_prompt + n_gen."""
        context = self._context(n_prompt + n_gen)
        ids = self.random_tokens(n_prompt + n_gen)
        tokens = (llama_cpp.llama_token * len(ids))(*ids)
        base, size = ctypes.addressof(tokens), ctypes.sizeof(llama_cpp.llama_token)
        at = [ctypes.cast(base + i * size, ctypes.POINTER(llama_cpp.llama_token)) for i in range(len(ids))]
        stamps: list[int] = []
        clock = time.perf_counter_ns
        start = clock()
        for offset in range(0, n_prompt, N_BATCH):
            self._decode(context, at[offset], min(N_BATCH, n_prompt - offset))
        if n_prompt:
            llama_cpp.llama_synchronize(context)
        for i in range(n_prompt, n_prompt + n_gen):
            self._decode(context, at[i], 1)
            llama_cpp.llama_synchronize(context)
            stamps.append(clock() - start)
        end = clock() - start
        return Generation(n_prompt, stamps, end, "", "length", *self._perf(context))


@dataclass
class Sequence:
    """A request in a BatchedEngine: its slot (llama.cpp's sequence id), the prompt tokens still to prefill,
    what it generated and when (time.monotonic_ns() values), and why it ended ("" while it runs)."""

    request: int
    slot: int
    prompt_tokens: int
    pending: list[int]
    budget: int
    ignore_eos: bool
    position: int = 0
    admit_ns: int = -1
    generated: list[int] = field(default_factory=list)
    token_ns: list[int] = field(default_factory=list)
    end_ns: int = -1
    finish: str = ""
    tail: bytes = b""


class BatchedEngine(LlamaEngine):
    """Continuous batching: up to `slots` sequences of `n_ctx` tokens each share one context (n_seq_max = slots,
    n_ctx = slots x n_ctx, one KV buffer for all when `kv_unified`). Each `step` decodes one llama_batch holding
    every running sequence's last token and the prompt tokens of newly started ones (chunked to N_BATCH, logits on
    a prompt's last token only), then samples greedily per sequence at its batch index. A sequence that ends
    leaves the KV cache (llama_memory_seq_rm) and frees its slot; new requests join between steps, in the lowest
    free slot. Without unified KV llama.cpp computes a batch in one pass per run of consecutive sequence ids, so
    slots in use with gaps between them (a middle one ended) cost a pass each until new requests fill the gaps."""

    def __init__(self, model_path: str, threads: int, slots: int, n_ctx: int, seed: int, prompt_format: str,
                 kv_unified: bool = False, extra_bufts: bool = True):
        self.slots, self.kv_unified = slots, kv_unified
        super().__init__(model_path, threads, slots * n_ctx, seed, prompt_format, extra_bufts)
        self.memory = llama_cpp.llama_get_memory(self.context)
        # what llama.cpp took: unified KV means one buffer of n_ctx cells that every sequence may use
        self.total_ctx, self.seq_ctx = llama_cpp.llama_n_ctx(self.context), llama_cpp.llama_n_ctx_seq(self.context)
        self.seq_limit = min(n_ctx, self.seq_ctx)  # a request's prompt and answer; the total then fits
        # with several sequences, separate KV buffers split n_ctx among them (one sequence: as asked)
        self.kv_unified_taken = kv_unified if slots == 1 else self.seq_ctx == self.total_ctx
        self.batch = llama_cpp.llama_batch_init(N_BATCH, 0, 1)
        self.free = list(range(llama_cpp.llama_n_seq_max(self.context)))  # a heap: the lowest slot first
        self.running: list[Sequence] = []

    def _context_params(self, n_ctx: int):
        params = super()._context_params(n_ctx)
        params.n_seq_max, params.kv_unified = self.slots, self.kv_unified
        return params

    def start(self, request: int, tokens: list[int], max_tokens: int, ignore_eos: bool) -> Sequence:
        """Give a request a free slot; its prefill goes into the next step. Raises ValueError when it does not fit
        a sequence's context (as LlamaEngine.generate does) and IndexError when no slot is free."""
        budget = min(max_tokens, self.seq_limit - len(tokens))
        if budget < 1 or not tokens:
            raise ValueError(f"the prompt has {len(tokens)} tokens; it does not fit n_ctx={self.seq_limit} per "
                             "sequence")
        sequence = Sequence(request, heapq.heappop(self.free), len(tokens), list(tokens), budget, ignore_eos)
        llama_cpp.llama_memory_seq_rm(self.memory, sequence.slot, -1, -1)
        self.running.append(sequence)
        return sequence

    def _add(self, n: int, token: int, position: int, slot: int, logits: bool) -> None:
        batch = self.batch
        batch.token[n], batch.pos[n], batch.n_seq_id[n], batch.logits[n] = token, position, 1, logits
        batch.seq_id[n][0] = slot

    def step(self) -> list[Sequence]:
        """One decode of every running sequence (prefill chunks of new ones included) and one greedy token each
        that finished its prompt; returns the sequences that ended, their slots freed."""
        clock = time.monotonic_ns
        parts = [(s, [s.generated[-1]]) for s in self.running if not s.pending]  # a long prompt never stalls them
        room = N_BATCH - len(parts)
        for sequence in self.running:
            if sequence.pending and room > 0:
                if sequence.admit_ns < 0:
                    sequence.admit_ns = clock()
                chunk, sequence.pending = sequence.pending[:room], sequence.pending[room:]
                parts.append((sequence, chunk))
                room -= len(chunk)
        # in slot order: without unified KV, llama.cpp splits a batch into ubatches of consecutive sequence ids
        n, outputs = 0, []
        for sequence, tokens in sorted(parts, key=lambda part: part[0].slot):
            for i, token in enumerate(tokens):
                self._add(n + i, token, sequence.position + i, sequence.slot, False)
            sequence.position, n = sequence.position + len(tokens), n + len(tokens)
            if not sequence.pending:
                self.batch.logits[n - 1] = True
                outputs.append((sequence, n - 1))
        self.batch.n_tokens = n
        if llama_cpp.llama_decode(self.context, self.batch) != 0:
            raise RuntimeError(f"llama_decode failed on a batch of {n} tokens")
        for sequence, index in outputs:
            self._sample(sequence, index, clock)
        ended = [s for s in self.running if s.finish]
        for sequence in ended:
            llama_cpp.llama_memory_seq_rm(self.memory, sequence.slot, -1, -1)
            heapq.heappush(self.free, sequence.slot)
        self.running = [s for s in self.running if not s.finish]
        return ended

    def _sample(self, sequence: Sequence, index: int, clock) -> None:
        """The sequence's next token (greedy, at its batch index) and its time; the stop rules of generate."""
        token = llama_cpp.llama_sampler_sample(self.sampler, self.context, index)
        now = clock()
        if not sequence.ignore_eos and llama_cpp.llama_vocab_is_eog(self.vocab, token):
            sequence.finish, sequence.end_ns = "stop", now
            return
        sequence.generated.append(token)
        sequence.token_ns.append(now)
        if self._stop:
            sequence.tail = self._tail(sequence.tail, token)
            if self._stop in sequence.tail:
                sequence.finish = "stop"
        if not sequence.finish and len(sequence.generated) == sequence.budget:
            sequence.finish = "length"
        if sequence.finish:
            sequence.end_ns = clock()
