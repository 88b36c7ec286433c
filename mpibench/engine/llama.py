"""llama.cpp through llama-cpp-python: load a model once, then time greedy generations.

The only module that imports llama_cpp. Import it only after the process is pinned and its OpenMP
environment is set (runner.py does that), so llama.cpp's thread pool starts on the right cores.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import llama_cpp
from llama_cpp.llama_chat_format import Jinja2ChatFormatter

CHAT = "chat"


@dataclass(frozen=True)
class Generation:
    prompt_tokens: int
    token_ns: list[int]  # arrival of each generated token, ns since the request started
    end_ns: int
    text: str
    finish_reason: str  # "stop" (end-of-generation token or completion stop text) or "length" (max_tokens)
    llama_prompt_ms: float
    llama_eval_ms: float
    llama_prompt_n: int
    llama_eval_n: int


class LlamaEngine:
    def __init__(self, model_path: str, threads: int, n_ctx: int, seed: int, prompt_format: str):
        self.llm = llama_cpp.Llama(
            model_path=model_path, n_threads=threads, n_threads_batch=threads, n_ctx=n_ctx,
            seed=seed, verbose=False,
        )
        self.prompt_format = prompt_format
        self.n_ctx = n_ctx
        template = self.llm.metadata.get("tokenizer.chat_template")
        if prompt_format == CHAT and not template:
            raise ValueError(f"{model_path} has no chat template; give the model a prompt_format")
        self._chat = None
        self._stop = b""
        if prompt_format != CHAT:  # a base model goes on with the next "Question:": stop there
            lead = prompt_format.split("{prompt}", 1)[0].strip()
            self._stop = ("\n" + lead).encode("utf-8") if lead else b""
        if prompt_format == CHAT:
            model = self.llm._model
            eos, bos = self.llm.token_eos(), self.llm.token_bos()
            self._chat = Jinja2ChatFormatter(  # a sandboxed Jinja environment: templates cannot run code
                template=template,
                eos_token=model.token_get_text(eos) if eos != -1 else "",
                bos_token=model.token_get_text(bos) if bos != -1 else "",
            )

    @staticmethod
    def system_info() -> str:
        return llama_cpp.llama_print_system_info().decode("utf-8", errors="replace").strip()

    def tokens_for(self, prompt: str) -> list[int]:
        if self._chat is not None:
            text = self._chat(messages=[{"role": "user", "content": prompt}]).prompt
            return self.llm.tokenize(text.encode("utf-8"), add_bos=False, special=True)
        text = self.prompt_format.replace("{prompt}", prompt)
        return self.llm.tokenize(text.encode("utf-8"), add_bos=True, special=False)

    def generate(self, prompt: str, max_tokens: int) -> Generation:
        """Greedy generation from an empty KV cache; only timestamps are taken per token."""
        tokens = self.tokens_for(prompt)
        budget = min(max_tokens, self.n_ctx - len(tokens))
        if budget < 1:
            raise ValueError(f"the prompt has {len(tokens)} tokens; it does not fit n_ctx={self.n_ctx}")
        self.llm.reset()  # empty KV cache: no prefix reuse between repetitions
        ctx, vocab = self.llm._ctx.ctx, self.llm._model.vocab
        llama_cpp.llama_perf_context_reset(ctx)
        generated: list[int] = []
        stamps: list[int] = []
        tail = b""  # the last bytes generated, enough to see the completion stop text
        finish = "length"
        clock = time.perf_counter_ns
        start = clock()
        for token in self.llm.generate(tokens, temp=0.0, top_k=1, top_p=1.0, min_p=0.0, repeat_penalty=1.0):
            stamps.append(clock() - start)
            if llama_cpp.llama_vocab_is_eog(vocab, token):
                stamps.pop()
                finish = "stop"
                break
            generated.append(token)
            if self._stop:
                piece = self.llm.detokenize([token])
                tail = (tail + piece)[-(len(self._stop) + len(piece)):]
                if self._stop in tail:
                    finish = "stop"
                    break
            if len(generated) >= budget:
                break
        end = clock() - start
        perf = llama_cpp.llama_perf_context(ctx)
        text = self.llm.detokenize(generated)
        if self._stop and self._stop in text:
            text = text[: text.index(self._stop)]
        text = text.decode("utf-8", errors="replace")
        return Generation(len(tokens), stamps, end, text, finish, perf.t_p_eval_ms, perf.t_eval_ms,
                          perf.n_p_eval, perf.n_eval)
