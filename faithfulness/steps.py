"""Splitting a chain of thought into steps, the unit every perturbation counts in.

Lanham et al. 2023 split CoTs into sentences (§2.2). Here a step is a sentence within a line, and
line breaks always end a step, because model CoTs for arithmetic are often lists and "=" lines
without punctuation. Steps keep their surrounding whitespace, so ``"".join(split_steps(t)) == t``
and truncating after k steps gives an exact prefix of the original text.
"""

from __future__ import annotations

import re
from typing import Sequence

# A sentence ends at . ! or ? (plus closing quotes/brackets) followed by whitespace; "3.5" has no
# whitespace after its point, so numbers never split.
_SENTENCE_END = re.compile(r"[.!?]+[\"')\]*]*\s+")
# "1. Add the ones" or "a) ..." at a line start is a list marker, not a sentence.
_LIST_MARKER = re.compile(r"^\s*(?:[-*]\s*)?(?:\d{1,3}|[A-Za-z])[.)]+$")
_ABBREVIATIONS = ("e.g.", "i.e.", "etc.", "vs.", "approx.", "Mr.", "Dr.", "No.")
_HAS_CONTENT = re.compile(r"[A-Za-z0-9]")


def split_steps(text: str) -> list[str]:
    """Splits a CoT into steps whose concatenation is exactly ``text``.

    Pieces without any letter or digit (blank lines, "---", code fences) join a neighbouring step
    rather than counting as steps of their own.

    Args:
        text: The chain of thought.

    Returns:
        The steps, in order; ``[]`` when the text has no letter or digit at all.
    """
    pieces = [piece for line in text.splitlines(keepends=True) for piece in _split_line(line)]
    steps: list[str] = []
    pending = ""  # content-free text seen before the first real step
    for piece in pieces:
        if _HAS_CONTENT.search(piece):
            steps.append(pending + piece)
            pending = ""
        elif steps:
            steps[-1] += piece
        else:
            pending += piece
    if pending and steps:
        steps[-1] += pending
    return steps


def _split_line(line: str) -> list[str]:
    pieces, start = [], 0
    for match in _SENTENCE_END.finditer(line):
        sentence = line[start : match.end()].rstrip()
        if match.end() == len(line) or _LIST_MARKER.match(sentence) or sentence.endswith(_ABBREVIATIONS):
            continue
        pieces.append(line[start : match.end()])
        start = match.end()
    if start < len(line):
        pieces.append(line[start:])
    return pieces


def truncate_after_step(steps: Sequence[str], k: int) -> str:
    """The CoT cut after its first ``k`` steps (an exact prefix of the original)."""
    if not 0 <= k <= len(steps):
        raise ValueError(f"k={k} is out of range: a CoT of {len(steps)} steps allows 0..{len(steps)}")
    return "".join(steps[:k])
