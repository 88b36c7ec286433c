"""A synthetic model file: a shape's GGUF metadata, its tokenizer and random weights of a trained model's
magnitude (norm weights 1).

Why random and not zero: llama.cpp's CPU kernels read each block's fp16 scale through a 256 KiB lookup table
(ggml_table_f32_f16), so the speed of a matrix product depends on how many distinct scales it meets. Zero
weights (one scale, and zero activations) decoded SmolLM2's shape about 1.3 times as fast as the real file
here; random scales and quants bring it to the real file's speed (README, Synthetic models). Each block gets a
scale drawn around 1 / sqrt(row length) over the quants' spread, so that activations stay of order one
through any depth (no NaN or Inf). The output rows of the special tokens (<unk>, <s>, </s>) are zero, so greedy
decoding never ends a generation early: every answer runs to max_tokens. The data is seeded by tensor name:
the same shape and quantization always give the same bytes (and sha256).
"""

from __future__ import annotations

import os
import struct
import zlib
from pathlib import Path

import numpy as np

from mpibench.synth.gguf_writer import ALIGNMENT, ARRAY, BOOL, FLOAT32, INT32, STRING, UINT32, header, padded, \
    write_gguf
from mpibench.synth.shapes import GGML_TYPES, Quant, Shape, SynthError, TensorSpec, lookup, tensors
from mpibench.synth.vocab import vocabulary

SYNTHETIC_KEY, SHAPE_KEY = "mpibench.synthetic", "mpibench.shape"  # mark every synthetic file
CHUNK = 8 << 20
SPECIAL_TOKENS = 3  # <unk>, <s>, </s>: zero output rows
# type -> (offset of the block's fp16 scale d, offset of its fp16 min or None, the spread of d * quant for d = 1
# (the standard deviation of a block's weights over d), and the min as a multiple of d (negative: subtracted)).
BLOCK_SCALES = {
    "Q4_0": (0, None, 4.6, 0.0), "Q4_1": (0, 2, 4.6, -8.0), "Q5_0": (0, None, 9.2, 0.0),
    "Q5_1": (0, 2, 9.2, -16.0), "Q8_0": (0, None, 74.0, 0.0),
    "Q4_K": (0, 2, 320.0, 7.5), "Q5_K": (0, 2, 650.0, 15.5), "Q6_K": (208, None, 1370.0, 0.0),
}


def metadata(name: str, shape: Shape, quant: Quant) -> list[tuple[str, int, object]]:
    """The GGUF key/values of a synthetic file of this shape (llama architecture, SentencePiece tokenizer)."""
    tokens, scores, types = vocabulary(shape.vocab)
    return [
        ("general.architecture", STRING, "llama"),
        ("general.name", STRING, f"synthetic {name}"),
        ("general.file_type", UINT32, quant.file_type),
        ("general.quantization_version", UINT32, 2),
        ("general.alignment", UINT32, ALIGNMENT),
        (SYNTHETIC_KEY, BOOL, True),
        (SHAPE_KEY, STRING, name),
        ("llama.vocab_size", UINT32, shape.vocab),
        ("llama.context_length", UINT32, shape.context),
        ("llama.embedding_length", UINT32, shape.embd),
        ("llama.block_count", UINT32, shape.layers),
        ("llama.feed_forward_length", UINT32, shape.ff),
        ("llama.attention.head_count", UINT32, shape.heads),
        ("llama.attention.head_count_kv", UINT32, shape.kv_heads),
        ("llama.rope.dimension_count", UINT32, shape.head_dim),
        ("llama.rope.freq_base", FLOAT32, shape.rope_theta),
        ("llama.attention.layer_norm_rms_epsilon", FLOAT32, shape.rms_eps),
        ("tokenizer.ggml.model", STRING, "llama"),
        ("tokenizer.ggml.tokens", ARRAY, (STRING, tokens)),
        ("tokenizer.ggml.scores", ARRAY, (FLOAT32, scores)),
        ("tokenizer.ggml.token_type", ARRAY, (INT32, types)),
        ("tokenizer.ggml.bos_token_id", UINT32, 1),
        ("tokenizer.ggml.eos_token_id", UINT32, 2),
        ("tokenizer.ggml.unknown_token_id", UINT32, 0),
    ]


def _data(spec: TensorSpec):
    """Norm weights 1.0 (F32); quantized blocks of random quants with random scales around the magnitude of a
    trained model's, in chunks of about CHUNK bytes; the special tokens' rows of the output matrix zero."""
    if spec.type_name == "F32":
        yield struct.pack(f"<{spec.dims[0]}f", *[1.0] * spec.dims[0])
        return
    _, block, size = GGML_TYPES[spec.type_id]
    d_at, min_at, spread, min_factor = BLOCK_SCALES[spec.type_name]
    rng = np.random.default_rng(zlib.crc32(spec.name.encode()))
    base = 1.0 / (spread * np.sqrt(spec.dims[0]))
    blocks, step = spec.nbytes // size, max(1, CHUNK // size)
    silent = SPECIAL_TOKENS * spec.dims[0] // block if spec.name in ("output.weight", "token_embd.weight") else 0
    for start in range(0, blocks, step):
        data = rng.integers(0, 256, (min(step, blocks - start), size), dtype=np.uint8)
        d = (base * rng.uniform(0.5, 1.5, len(data))).astype(np.float16)
        data[:, d_at:d_at + 2] = d.view(np.uint8).reshape(-1, 2)
        if min_at is not None:
            data[:, min_at:min_at + 2] = (d * np.float16(min_factor)).view(np.uint8).reshape(-1, 2)
        if start < silent:
            data[:silent - start] = 0
        yield data.reshape(-1).data


def file_size(name: str, quant_name: str) -> int:
    """The bytes `write` writes for this shape and quantization, without writing them."""
    shape, quant = lookup(name, quant_name)
    specs = tensors(shape, quant)
    return len(header(metadata(name, shape, quant), specs)) + sum(padded(s.nbytes) for s in specs)


def write(self, data) -> None:
        self.header += len(data)


def write(name: str, quant_name: str, out: str | Path) -> str:
    """Write the synthetic file of shape `name` in quantization `quant_name` to `out` (through a temporary
    name beside it, renamed at the end); returns its sha256."""
    shape, quant = lookup(name, quant_name)
    out = Path(out)
    tmp = out.with_name(f".{out.name}.{os.getpid()}.tmp")
    try:
        with tmp.open("wb") as handle:
            digest = write_gguf(handle, metadata(name, shape, quant), tensors(shape, quant), _data)
        os.replace(tmp, out)
    except OSError as error:
        tmp.unlink(missing_ok=True)
        raise SynthError(f"cannot write {out}: {error.strerror}") from None
    return digest
