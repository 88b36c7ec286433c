"""Write a llama-shaped GGUF file with all-zero Q4_0 weights, for timing runs where no real model can be had.

Weight values do not change llama.cpp's timings, only the shapes and the quantization type do; with zero
weights every logit is equal, greedy decoding picks token 0 (<unk>, not an end token) and generation runs
to max_tokens. Usage: python tests/benchmarks/synthetic_gguf.py llama-7b /tmp/llama-7b-q4_0.gguf
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass

import gguf
import numpy as np

Q4_0_BLOCK, Q4_0_BYTES = 32, 18


@dataclass(frozen=True)
class Shape:
    vocab: int
    embd: int
    layers: int
    heads: int
    kv_heads: int
    ff: int


SHAPES = {
    "tiny": Shape(vocab=512, embd=128, layers=2, heads=4, kv_heads=2, ff=256),
    "smollm2-135m": Shape(vocab=49152, embd=576, layers=30, heads=9, kv_heads=3, ff=1536),
    "llama-1b": Shape(vocab=32000, embd=2048, layers=22, heads=32, kv_heads=4, ff=5632),  # TinyLlama-1.1B's
    "llama-7b": Shape(vocab=32000, embd=4096, layers=32, heads=32, kv_heads=32, ff=11008),
    "llama-13b": Shape(vocab=32000, embd=5120, layers=40, heads=40, kv_heads=40, ff=13824),
}


def _q4_0(rows: int, cols: int) -> np.ndarray:
    """Zero Q4_0 data for a rows x cols matrix (cols is the dot-product length)."""
    return np.zeros((rows, cols // Q4_0_BLOCK * Q4_0_BYTES), dtype=np.uint8)


def _vocab(size: int) -> tuple[list[str], list[float], list[int]]:
    specials = ["<unk>", "<s>", "</s>"]
    byte_tokens = [f"<0x{i:02X}>" for i in range(256)]
    words = [f"\u2581t{i}" for i in range(size - len(specials) - len(byte_tokens))]
    types = [2, 3, 3] + [6] * len(byte_tokens) + [1] * len(words)
    return specials + byte_tokens + words, [0.0] * size, types


def write(shape: Shape, path: str) -> None:
    head_dim = shape.embd // shape.heads
    writer = gguf.GGUFWriter(path, "llama")
    writer.add_name("synthetic llama")
    writer.add_context_length(4096)
    writer.add_embedding_length(shape.embd)
    writer.add_block_count(shape.layers)
    writer.add_feed_forward_length(shape.ff)
    writer.add_head_count(shape.heads)
    writer.add_head_count_kv(shape.kv_heads)
    writer.add_rope_dimension_count(head_dim)
    writer.add_layer_norm_rms_eps(1e-5)
    writer.add_file_type(gguf.LlamaFileType.MOSTLY_Q4_0)
    tokens, scores, types = _vocab(shape.vocab)
    writer.add_tokenizer_model("llama")
    writer.add_token_list(tokens)
    writer.add_token_scores(scores)
    writer.add_token_types(types)
    writer.add_bos_token_id(1)
    writer.add_eos_token_id(2)
    writer.add_unk_token_id(0)
    q4 = gguf.GGMLQuantizationType.Q4_0
    ones = np.ones(shape.embd, dtype=np.float32)
    writer.add_tensor("token_embd.weight", _q4_0(shape.vocab, shape.embd), raw_dtype=q4)
    for i in range(shape.layers):
        kv = shape.kv_heads * head_dim
        writer.add_tensor(f"blk.{i}.attn_norm.weight", ones)
        writer.add_tensor(f"blk.{i}.attn_q.weight", _q4_0(shape.embd, shape.embd), raw_dtype=q4)
        writer.add_tensor(f"blk.{i}.attn_k.weight", _q4_0(kv, shape.embd), raw_dtype=q4)
        writer.add_tensor(f"blk.{i}.attn_v.weight", _q4_0(kv, shape.embd), raw_dtype=q4)
        writer.add_tensor(f"blk.{i}.attn_output.weight", _q4_0(shape.embd, shape.embd), raw_dtype=q4)
        writer.add_tensor(f"blk.{i}.ffn_norm.weight", ones)
        writer.add_tensor(f"blk.{i}.ffn_gate.weight", _q4_0(shape.ff, shape.embd), raw_dtype=q4)
        writer.add_tensor(f"blk.{i}.ffn_up.weight", _q4_0(shape.ff, shape.embd), raw_dtype=q4)
        writer.add_tensor(f"blk.{i}.ffn_down.weight", _q4_0(shape.embd, shape.ff), raw_dtype=q4)
    writer.add_tensor("output_norm.weight", ones)
    writer.add_tensor("output.weight", _q4_0(shape.vocab, shape.embd), raw_dtype=q4)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("shape", choices=sorted(SHAPES))
    parser.add_argument("path")
    args = parser.parse_args(argv)
    write(SHAPES[args.shape], args.path)
    print(args.path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
