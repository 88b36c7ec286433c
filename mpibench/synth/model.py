"""A synthetic model file: a shape's GGUF metadata, its tokenizer and zero weights (norm weights 1, so that no
NaN or Inf appears: every logit is 0 and greedy decoding picks token 0, <unk>, which ends nothing)."""

from __future__ import annotations

import os
import struct
from pathlib import Path

from mpibench.synth.gguf_writer import ALIGNMENT, ARRAY, BOOL, FLOAT32, INT32, STRING, UINT32, header, padded, \
    write_gguf
from mpibench.synth.shapes import Quant, Shape, SynthError, TensorSpec, lookup, tensors
from mpibench.synth.vocab import vocabulary

SYNTHETIC_KEY, SHAPE_KEY = "mpibench.synthetic", "mpibench.shape"  # mark every synthetic file
CHUNK = 8 << 20
_ZEROS = bytes(CHUNK)


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
    """Norm weights 1.0 (F32), everything else zero bytes (zero scales: every quantized weight is 0)."""
    if spec.type_name == "F32":
        yield struct.pack(f"<{spec.dims[0]}f", *[1.0] * spec.dims[0])
        return
    left = spec.nbytes
    while left:
        step = min(left, CHUNK)
        yield _ZEROS[:step] if step < CHUNK else _ZEROS
        left -= step


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
