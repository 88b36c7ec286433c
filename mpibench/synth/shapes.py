"""Model shapes (published config.json values) and the tensors of a llama-architecture GGUF of one (pure).

Tensor types follow llama-quantize's defaults (llama.cpp src/llama-quant.cpp, llama_tensor_get_type) for the
main rules: the output matrix (or the tied token embedding) in Q6_K (Q8_0 for q8_0), Q4_K_M's attn_v and
ffn_down in Q6_K on the layers where it spends more bits, and the fallback of a k-quant whose rows are not a
multiple of 256 (Q4_K -> Q5_0, Q6_K -> Q8_0). The 70B's Q5_K attn_v of Q4_K_M is not reproduced.
"""

from __future__ import annotations

from dataclasses import dataclass

SYNTH_PREFIX = "synth:"  # a config's model "synth:SHAPE:QUANT"

# ggml type id -> (name, elements per block, bytes per block)
GGML_TYPES = {0: ("F32", 1, 4), 2: ("Q4_0", 32, 18), 3: ("Q4_1", 32, 20), 6: ("Q5_0", 32, 22),
              7: ("Q5_1", 32, 24), 8: ("Q8_0", 32, 34), 12: ("Q4_K", 256, 144), 13: ("Q5_K", 256, 176),
              14: ("Q6_K", 256, 210)}
TYPE_IDS = {name: type_id for type_id, (name, _, _) in GGML_TYPES.items()}
K_FALLBACK = {"Q4_K": "Q5_0", "Q5_K": "Q5_1", "Q6_K": "Q8_0"}  # rows not a multiple of 256


@dataclass(frozen=True)
class Quant:
    """A quantization as llama-quantize names it: its general.file_type and its tensors' default type."""

    file_type: int
    weights: str  # the type of the layers' matrices and of an untied token embedding
    output: str  # the type of the output matrix (or of the token embedding when it is tied)


QUANTS = {
    "q4_0": Quant(2, "Q4_0", "Q6_K"),
    "q4_1": Quant(3, "Q4_1", "Q6_K"),
    "q8_0": Quant(7, "Q8_0", "Q8_0"),
    "q4_k": Quant(15, "Q4_K", "Q6_K"),  # Q4_K_M
}


@dataclass(frozen=True)
class Shape:
    """A llama-architecture model's hyperparameters, as its published config.json gives them."""

    vocab: int
    embd: int  # hidden_size
    layers: int  # num_hidden_layers
    heads: int  # num_attention_heads
    kv_heads: int  # num_key_value_heads
    ff: int  # intermediate_size
    context: int  # max_position_embeddings
    rope_theta: float
    rms_eps: float
    tied: bool  # tie_word_embeddings: no output matrix, the token embedding serves
    source: str

    @property
    def head_dim(self) -> int:
        return self.embd // self.heads


HF = "https://huggingface.co/{}/blob/main/config.json"
SHAPES = {
    "llama2-7b": Shape(32000, 4096, 32, 32, 32, 11008, 4096, 10000.0, 1e-5, False, HF.format("meta-llama/Llama-2-7b-hf")),
    "llama2-13b": Shape(32000, 5120, 40, 40, 40, 13824, 4096, 10000.0, 1e-5, False, HF.format("meta-llama/Llama-2-13b-hf")),
    "llama2-70b": Shape(32000, 8192, 80, 64, 8, 28672, 4096, 10000.0, 1e-5, False, HF.format("meta-llama/Llama-2-70b-hf")),
    "llama3-8b": Shape(128256, 4096, 32, 32, 8, 14336, 8192, 500000.0, 1e-5, False, HF.format("meta-llama/Meta-Llama-3-8B")),
    "llama3-70b": Shape(128256, 8192, 80, 64, 8, 28672, 8192, 500000.0, 1e-5, False, HF.format("meta-llama/Meta-Llama-3-70B")),
    "llama3.2-1b": Shape(128256, 2048, 16, 32, 8, 8192, 131072, 500000.0, 1e-5, True, HF.format("meta-llama/Llama-3.2-1B")),
    "tinyllama-1.1b": Shape(32000, 2048, 22, 32, 4, 5632, 2048, 10000.0, 1e-5, False,
                            HF.format("TinyLlama/TinyLlama-1.1B-intermediate-step-1431k-3T")),
    "smollm2-135m": Shape(49152, 576, 30, 9, 3, 1536, 8192, 100000.0, 1e-5, True,
                          HF.format("HuggingFaceTB/SmolLM2-135M-Instruct")),
    "tiny": Shape(512, 128, 2, 4, 2, 256, 2048, 10000.0, 1e-5, False, "none: a test shape, no published model"),
}


@dataclass(frozen=True)
class TensorSpec:
    """One tensor of the file: its name, dimensions (ggml order: the row length first), type and bytes."""

    name: str
    dims: tuple[int, ...]
    type_name: str

    @property
    def type_id(self) -> int:
        return TYPE_IDS[self.type_name]

    @property
    def nbytes(self) -> int:
        _, block, size = GGML_TYPES[self.type_id]
        elements = 1
        for d in self.dims:
            elements *= d
        return elements // block * size


class SynthError(ValueError):
    """A shape, quantization or output that cannot be used; the message says what to do."""


def lookup(shape: str, quant: str) -> tuple[Shape, Quant]:
    """The shape and quantization of these names, or a SynthError naming the valid ones."""
    if shape not in SHAPES:
        raise SynthError(f"unknown shape '{shape}'; known: {', '.join(SHAPES)} (mpibench synth --list)")
    if quant not in QUANTS:
        raise SynthError(f"unknown quantization '{quant}'; known: {', '.join(QUANTS)}")
    return SHAPES[shape], QUANTS[quant]


def is_synth_name(name: str | None) -> bool:
    """Whether a model entry names a synthetic model ("synth:SHAPE:QUANT")."""
    return bool(name) and name.startswith(SYNTH_PREFIX)


def parse_synth_name(name: str) -> tuple[str, str]:
    """(shape, quant) of a model entry "synth:SHAPE:QUANT"."""
    parts = name[len(SYNTH_PREFIX):].split(":")
    if not name.startswith(SYNTH_PREFIX) or len(parts) != 2:
        raise SynthError(f"'{name}' is not a synthetic model name; write synth:SHAPE:QUANT, e.g. synth:llama2-7b:q4_0")
    lookup(*parts)
    return parts[0], parts[1]


def _fitted(type_name: str, row: int) -> str:
    _, block, _ = GGML_TYPES[TYPE_IDS[type_name]]
    return K_FALLBACK[type_name] if row % block else type_name


def _more_bits(layer: int, layers: int) -> bool:
    """llama-quantize's use_more_bits: the first and last eighth of the layers and every third between."""
    return layer < layers // 8 or layer >= 7 * layers // 8 or (layer - layers // 8) % 3 == 2


def tensors(shape: Shape, quant: Quant) -> list[TensorSpec]:
    """The file's tensors in llama.cpp's order, with their types under this quantization."""
    q4k = quant.weights == "Q4_K"
    kv = shape.kv_heads * shape.head_dim

    def matrix(name: str, row: int, rows: int, type_name: str = quant.weights) -> TensorSpec:
        return TensorSpec(name, (row, rows), _fitted(type_name, row))

    embedding = quant.output if shape.tied else quant.weights
    specs = [matrix("token_embd.weight", shape.embd, shape.vocab, embedding)]
    for i in range(shape.layers):
        more = "Q6_K" if q4k and _more_bits(i, shape.layers) else quant.weights
        specs += [
            TensorSpec(f"blk.{i}.attn_norm.weight", (shape.embd,), "F32"),
            matrix(f"blk.{i}.attn_q.weight", shape.embd, shape.embd),
            matrix(f"blk.{i}.attn_k.weight", shape.embd, kv),
            matrix(f"blk.{i}.attn_v.weight", shape.embd, kv, more),
            matrix(f"blk.{i}.attn_output.weight", shape.embd, shape.embd),
            TensorSpec(f"blk.{i}.ffn_norm.weight", (shape.embd,), "F32"),
            matrix(f"blk.{i}.ffn_gate.weight", shape.embd, shape.ff),
            matrix(f"blk.{i}.ffn_up.weight", shape.embd, shape.ff),
            matrix(f"blk.{i}.ffn_down.weight", shape.ff, shape.embd, more),
        ]
    specs.append(TensorSpec("output_norm.weight", (shape.embd,), "F32"))
    if not shape.tied:
        specs.append(matrix("output.weight", shape.embd, shape.vocab, quant.output))
    return specs
