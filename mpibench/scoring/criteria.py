"""The rubric vocabulary: each criterion kind checks an answer and returns the fraction of its points earned.

Every check is pure and deterministic: (answer, params) -> (fraction in [0, 1], short note). Their parameter
specifications live in prompts/rubric.py, which validates rubrics before any scoring.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from decimal import ROUND_DOWN, ROUND_HALF_UP, Decimal

FLAGS = re.IGNORECASE | re.MULTILINE
NUMBER = re.compile(r"(?<![\w.])-?\d+(?:\.\d+)?(?:[eE][-+]?\d+)?")
SHAPES = {3: "triangle", 4: "square", 5: "pentagon", 6: "hexagon", 8: "octagon", 10: "decagon"}
_COORD = r"-?\d+(?:\.\d+)?"
_PAIR = rf"\[\s*{_COORD}\s*,\s*{_COORD}\s*\]"
RING = re.compile(rf"\[\s*{_PAIR}(?:\s*,\s*{_PAIR})+\s*,?\s*\]")
PAIR = re.compile(rf"\[\s*({_COORD})\s*,\s*({_COORD})\s*\]")
BRACKETS = {")": "(", "]": "[", "}": "{"}


def _has_word(text: str, word: str) -> bool:
    return re.search(rf"(?<!\w){re.escape(word)}(?!\w)", text, FLAGS) is not None


def keywords(answer: str, words: list[str], need: int = 1) -> tuple[float, str]:
    found = [w for w in words if _has_word(answer, w)]
    note = "found " + ", ".join(found[:4]) if found else "none of " + ", ".join(words[:4])
    return min(len(found), need) / need, note


def forbidden_keywords(answer: str, words: list[str]) -> tuple[float, str]:
    found = [w for w in words if _has_word(answer, w)]
    return (0.0, "says " + ", ".join(found[:3])) if found else (1.0, "none")


def regex(answer: str, patterns: list[str], need: int = 1) -> tuple[float, str]:
    found = [m[0] for p in patterns if (m := re.search(p, answer, FLAGS))]
    note = "matched " + ", ".join(repr(f[:40]) for f in found[:2]) if found else "no match"
    return min(len(found), need) / need, note


def forbidden_regex(answer: str, patterns: list[str]) -> tuple[float, str]:
    found = [m[0] for p in patterns if (m := re.search(p, answer, FLAGS))]
    return (0.0, "says " + repr(found[0][:60])) if found else (1.0, "none")


def number(answer: str, value: float, tolerance: float = 0.0) -> tuple[float, str]:
    numbers = [float(n) for n in NUMBER.findall(answer)]
    close = [n for n in numbers if abs(n - value) <= tolerance]
    if close:
        return 1.0, f"states {close[0]:g}"
    return 0.0, f"no number within {tolerance:g} of {value:g}" + (f" (states {numbers[0]:g})" if numbers else "")


def digits(answer: str, reference: str, full: int) -> tuple[float, str]:
    """Correct decimals of the best stated value of `reference` (rounded or truncated counts). A value that goes
    wrong before `full` correct decimals earns nothing; one that goes wrong after them earns half."""
    whole, _, decimals = reference.partition(".")
    best: tuple[int, int, str] | None = None
    for match in re.finditer(rf"(?<![\d.]){re.escape(whole)}\.(\d+)", answer):
        stated = match[1]
        exact = Decimal(f"{whole}.{stated}")
        step = Decimal(1).scaleb(-len(stated))
        if exact in (Decimal(reference).quantize(step, ROUND_HALF_UP), Decimal(reference).quantize(step, ROUND_DOWN)):
            correct = len(stated)
        else:
            correct = next(i for i, (a, b) in enumerate(zip(stated, decimals + "x" * len(stated))) if a != b)
        if best is None or (correct, best[1]) > (best[0], len(stated) - correct):
            best = (correct, len(stated) - correct, match[0])
    if best is None:
        return 0.0, f"states no value {whole}.x"
    correct, wrong, text = best
    fraction = (0.5 if correct >= full else 0.0) if wrong else min(correct, full) / full
    return fraction, f"{text}: {correct} correct decimals" + (f", then {wrong} wrong" if wrong else "")


def _within(count: int, low: int, high: int | None) -> float:
    if count < low:
        return count / low
    if high is not None and count > high:
        return high / count
    return 1.0


def length(answer: str, min_words: int = 0, max_words: int | None = None) -> tuple[float, str]:
    count = len(answer.split())
    return _within(count, min_words, max_words), f"{count} words"


def paragraphs(answer: str, min: int = 1, max: int | None = None) -> tuple[float, str]:  # noqa: A002
    count = len([p for p in re.split(r"\n\s*\n", answer) if p.strip()])
    return _within(count, min, max), f"{count} paragraphs"


def repetition_share(text: str, n: int) -> float:
    """Share of the word n-grams that repeat an earlier one: 0 for fresh text, near 1 for a loop."""
    words = re.findall(r"\w+", text.lower())
    grams = [tuple(words[i:i + n]) for i in range(len(words) - n + 1)]
    return 1 - len(set(grams)) / len(grams) if grams else 0.0


def repetition(answer: str, max: float = 0.2, n: int = 4) -> tuple[float, str]:  # noqa: A002
    share = repetition_share(answer, n)
    return (1.0 if share <= max else 0.0), f"{share:.0%} repeated {n}-grams (limit {max:.0%})"


def polygons(answer: str, sides: list[int], closed: bool = True) -> tuple[float, str]:
    """A ring of coordinate pairs per required vertex count; an open ring earns half when rings must close."""
    credit = {s: 0.0 for s in sides}
    for ring in RING.finditer(answer):
        points = [(float(x), float(y)) for x, y in PAIR.findall(ring[0])]
        is_closed = len(points) > 3 and points[0] == points[-1]
        vertices = len(set(points))
        if vertices in credit:
            credit[vertices] = max(credit[vertices], 1.0 if is_closed or not closed else 0.5)
    notes = [f"{SHAPES.get(s, f'{s}-gon')} " + {1.0: "ok", 0.5: "open ring", 0.0: "missing"}[c] for s, c in credit.items()]
    return sum(credit.values()) / len(sides), ", ".join(notes)


def balanced(answer: str) -> tuple[float, str]:
    """Brackets balance (in the fenced code blocks when the answer has any)."""
    blocks = re.findall(r"```[^\n]*\n(.*?)(?:```|\Z)", answer, re.DOTALL)
    code = "\n".join(blocks) if blocks else answer
    stack: list[str] = []
    for char in code:
        if char in "([{":
            stack.append(char)
        elif char in BRACKETS and (not stack or stack.pop() != BRACKETS[char]):
            return 0.0, f"unmatched {char!r}"
    return (0.0, f"{len(stack)} unclosed brackets") if stack else (1.0, "balanced")


CHECKS: dict[str, Callable[..., tuple[float, str]]] = {
    "keywords": keywords, "forbidden_keywords": forbidden_keywords, "regex": regex,
    "forbidden_regex": forbidden_regex, "number": number, "digits": digits, "length": length,
    "paragraphs": paragraphs, "repetition": repetition, "polygons": polygons, "balanced": balanced,
}
