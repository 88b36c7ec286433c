"""A GGUF v3 writer that streams: header, metadata and tensor infos first, then each tensor's data in chunks,
so that no tensor is ever held in memory whole. The format: github.com/ggml-org/ggml/blob/master/docs/gguf.md
"""

from __future__ import annotations

import hashlib
import struct
from concurrent.futures import ThreadPoolExecutor
from collections.abc import Callable, Iterable
from typing import BinaryIO

from mpibench.synth.shapes import TensorSpec

ALIGNMENT = 32  # general.alignment's default
UINT8, INT32, UINT32, FLOAT32, BOOL, STRING, ARRAY = 0, 5, 4, 6, 7, 8, 9
_FORMATS = {UINT8: "B", INT32: "i", UINT32: "I", FLOAT32: "f", BOOL: "?"}


def _string(text: str) -> bytes:
    data = text.encode("utf-8")
    return struct.pack("<Q", len(data)) + data


def _value(vtype: int, value) -> bytes:
    if vtype == STRING:
        return _string(value)
    if vtype == ARRAY:
        item_type, items = value
        head = struct.pack("<IQ", item_type, len(items))
        if item_type == STRING:
            return head + b"".join(_string(item) for item in items)
        return head + struct.pack(f"<{len(items)}{_FORMATS[item_type]}", *items)
    return struct.pack("<" + _FORMATS[vtype], value)


def padded(size: int) -> int:
    """`size` rounded up to the alignment."""
    return size + -size % ALIGNMENT


def header(metadata: list[tuple[str, int, object]], tensors: list[TensorSpec]) -> bytes:
    """Everything before the tensor data: `metadata` as (key, value type, value), arrays as (item type, items),
    the tensor infos, and the padding up to the data."""
    parts = [b"GGUF", struct.pack("<IQQ", 3, len(tensors), len(metadata))]
    parts += [_string(key) + struct.pack("<I", vtype) + _value(vtype, value) for key, vtype, value in metadata]
    offset = 0
    for spec in tensors:
        parts.append(_string(spec.name) + struct.pack(f"<I{len(spec.dims)}QIQ", len(spec.dims), *spec.dims,
                                                      spec.type_id, offset))
        offset += padded(spec.nbytes)
    head = b"".join(parts)
    return head + bytes(padded(len(head)) - len(head))


def write_gguf(handle: BinaryIO, metadata: list[tuple[str, int, object]], tensors: list[TensorSpec],
               data: Callable[[TensorSpec], Iterable[bytes]]) -> str:
    """Write a GGUF file: its header, then each tensor filled with what `data(spec)` yields (exactly
    spec.nbytes bytes), aligned. Returns the file's sha256, computed in a second thread while the next chunk is
    written (both release the GIL), so that hashing does not slow the write down."""
    digest = hashlib.sha256()
    with ThreadPoolExecutor(1) as hasher:
        hashed = hasher.submit(digest.update, b"")

        def put(chunk: bytes) -> None:
            nonlocal hashed
            handle.write(chunk)
            hashed.result()  # in order: the previous chunk is hashed before this one
            hashed = hasher.submit(digest.update, chunk)

        put(header(metadata, tensors))
        for spec in tensors:
            written = 0
            for chunk in data(spec):
                put(chunk)
                written += len(chunk)
            if written != spec.nbytes:
                raise ValueError(f"tensor {spec.name}: {written} bytes written, {spec.nbytes} expected")
            put(bytes(padded(written) - written))
        hashed.result()
    return digest.hexdigest()
