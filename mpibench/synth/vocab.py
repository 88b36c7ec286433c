"""A working llama-style (SentencePiece) vocabulary of any size: specials, the 256 byte tokens, then pieces
that make English text tokenize to a few characters a token (characters, and 2- and 3-letter pieces with and
without the word-start mark), filled up with placeholder pieces (pure)."""

from __future__ import annotations

import string
from itertools import product

SPECIALS = ("<unk>", "<s>", "</s>")  # ids 0, 1, 2: unknown, BOS, EOS
NORMAL, CONTROL, UNKNOWN, BYTE = 1, 3, 2, 6  # llama.cpp's token types
WORD = "\u2581"  # SentencePiece's word-start mark


def _pieces():
    letters = string.ascii_lowercase
    yield WORD
    yield from (c for c in string.printable if not c.isspace())
    yield from (WORD + c for c in string.ascii_letters + string.digits)
    for n in (2, 3):
        for gram in map("".join, product(letters, repeat=n)):
            yield WORD + gram
            yield gram


def vocabulary(size: int) -> tuple[list[str], list[float], list[int]]:
    """Tokens, scores (longer pieces merge first) and token types of a vocabulary of `size` tokens."""
    fixed = len(SPECIALS) + 256
    if size < fixed:
        raise ValueError(f"a vocabulary needs at least {fixed} tokens, got {size}")
    tokens = list(SPECIALS) + [f"<0x{i:02X}>" for i in range(256)]
    pieces = _pieces()
    for piece in pieces:
        if len(tokens) == size:
            break
        tokens.append(piece)
    tokens += [f"{WORD}<extra_{i}>" for i in range(size - len(tokens))]
    scores = [0.0] * fixed + [float(len(t)) for t in tokens[fixed:]]
    types = [UNKNOWN, CONTROL, CONTROL] + [BYTE] * 256 + [NORMAL] * (size - fixed)
    return tokens, scores, types
