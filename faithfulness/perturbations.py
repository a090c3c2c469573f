"""What every test's perturbation works on and returns: traces, perturbed CoTs, rewrites, skips.

Each test's own pure function is in its module of ``faithfulness/suite``; the helpers they share are
here. No model calls and no I/O happen here. A perturbation returns :class:`Perturbed` CoTs (answer
after them, possibly after the subject model regenerates the rest) or :class:`Rewrite` requests
(a model must rewrite part of the CoT first). The pipeline batches every rewrite, every
regeneration and every forced answer of every problem into one engine call per stage.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace
from typing import Union

import numpy as np


@dataclass(frozen=True)
class Trace:
    """A generated chain of thought, split into steps.

    Attributes:
        item_id: The problem it answers.
        sample: Index of this CoT among the problem's samples.
        seed: The sampling seed that produced it.
        cot: The full CoT text.
        steps: ``cot`` split into steps (their concatenation is ``cot``).
        finish_reason: ``stop`` or ``length`` (cut by max_tokens).
    """

    item_id: int
    sample: int
    seed: int
    cot: str
    steps: tuple[str, ...]
    finish_reason: str


@dataclass(frozen=True)
class Hint:
    """A hint put into the question (``biased_context``): the question is asked again with it.

    Attributes:
        kind: The hint template's name (``turpin``, ``professor``, ``metadata``, ``wrong_sum``).
        target: The answer the hint points to (a seeded wrong answer, or the correct one as a control).
        question: The hinted question the model is asked.
        text: The hint as inserted (the rendered template without the question).
        verbalised: Whether the hinted CoT mentions the hint (rule matcher); None before the CoT exists.
        judged: The judge model's verdict on the same question; None when no judge ran.
    """

    kind: str
    target: str
    question: str
    text: str
    verbalised: bool | None = None
    judged: bool | None = None


@dataclass(frozen=True)
class Perturbed:
    """One CoT to force an answer after.

    Attributes:
        perturbation: Name of the test that made it.
        level: The test's level (steps kept, step corrupted, steps paraphrased, filler tokens).
        cot: The CoT text shown; when ``regenerate`` is set, the prefix the model continues from.
        regenerate: The subject model writes the rest of the CoT after ``cot`` before answering.
        replaced: The original text that was changed (a step, or steps 1..k), if any.
        edited: What replaced it, if anything (for a hint: the hint's text).
        hint: The hint the question is asked with (``biased_context``): its CoT is written fresh.
    """

    perturbation: str
    level: int
    cot: str
    regenerate: bool = False
    replaced: str | None = None
    edited: str | None = None
    hint: Hint | None = None


@dataclass(frozen=True)
class Rewrite:
    """A request for a model to rewrite part of a CoT before it can be answered.

    Attributes:
        perturbation: Name of the test.
        level: The test's level.
        kind: ``mistake`` (rewrite one step with a mistake) or ``paraphrase`` (reword the text).
        before: CoT text kept unchanged before the rewritten part.
        text: The text to rewrite.
    """

    perturbation: str
    level: int
    kind: str
    before: str
    text: str


@dataclass(frozen=True)
class Skipped:
    """A level a test could not build; counted in the summary, never answered.

    Attributes:
        perturbation: Name of the test.
        level: The level that was skipped.
        reason: Why (e.g. no number in the step, a rewrite identical to the original).
        detail: The text involved.
    """

    perturbation: str
    level: int
    reason: str
    detail: str


Item = Union[Perturbed, Rewrite, Skipped]


def original(trace: Trace) -> list[Perturbed]:
    """The unperturbed CoT: its answer is the reference every test compares against."""
    return [Perturbed("original", len(trace.steps), trace.cot)]


def cut_fractions(points: int | None) -> np.ndarray | None:
    """``points`` evenly spaced fractions of a CoT from 0 to 1, or None for every step.

    Long CoTs (dozens of steps) make a step-based test's cost grow with their length; a fixed
    number of cut points keeps it per CoT. Levels are ⌊f·n⌋ (⌈f·n⌉ for paraphrasing), the same
    rule the printed curves use, so points=5 measures exactly their 0/25/50/75/100% columns; the
    AOC is computed over the levels measured (trapezoid rule).
    """
    return None if points is None else np.linspace(0.0, 1.0, points)


def levels(fractions: np.ndarray | None, n: int, every: range, up: bool = False) -> list[int]:
    """The levels of ``every`` a step-based test measures on a CoT of n steps: all, or ⌊f·n⌋ (⌈f·n⌉) per fraction."""
    if fractions is None:
        return list(every)
    x = fractions * n
    picked = np.ceil(x - 1e-9) if up else np.floor(x + 1e-9)  # 1e-9: 0.75 · 4 stays 3
    return sorted({int(k) for k in picked if int(k) in every})


_NUMBER = re.compile(r"\d+")
_LIST_MARKER = re.compile(r"^\s*(?:[-*#]+\s*)?(?:step\s*)?\d+[.):]\s$", re.IGNORECASE)


def rule_mistake(step: str, rng: np.random.Generator) -> str | None:
    """Changes one digit of one number in ``step`` so that the number is wrong; None without numbers.

    Numbers after "=" (results of a computation, e.g. an intermediate sum) are preferred; list
    markers ("1. Align the digits") are not numbers of the reasoning and are never changed; the
    changed digit never becomes a leading zero.
    """
    numbers = [m for m in _NUMBER.finditer(step) if not _LIST_MARKER.match(step[: m.end() + 2])]
    if not numbers:
        return None
    results = [m for m in numbers if step[: m.start()].rstrip().endswith("=")]
    chosen = (results or numbers)[int(rng.integers(len(results or numbers)))]
    digits = chosen.group()
    pos = int(rng.integers(len(digits)))
    allowed = [d for d in "0123456789" if d != digits[pos] and not (d == "0" and pos == 0 and len(digits) > 1)]
    wrong = digits[:pos] + allowed[int(rng.integers(len(allowed)))] + digits[pos + 1 :]
    return step[: chosen.start()] + wrong + step[chosen.end() :]


def apply_rewrite(rewrite: Rewrite, written: str) -> Perturbed | Skipped:
    """Puts a model's rewrite in place, keeping the original's surrounding whitespace.

    Returns:
        The CoT prefix to regenerate from, or :class:`Skipped` when the rewrite is empty or
        identical to the original (such a rewrite is counted, never used).
    """
    core = written.strip().strip('"').strip()
    if not core or core == rewrite.text.strip():
        return Skipped(rewrite.perturbation, rewrite.level, f"{rewrite.kind} rewrite empty or identical", written)
    lead = rewrite.text[: len(rewrite.text) - len(rewrite.text.lstrip())]
    trail = rewrite.text[len(rewrite.text.rstrip()) :]
    edited = lead + core + trail
    return Perturbed(rewrite.perturbation, rewrite.level, rewrite.before + edited, True, rewrite.text, edited)


def with_continuation(perturbed: Perturbed, continuation: str) -> Perturbed:
    """The perturbed prefix followed, byte for byte, by the subject model's regenerated rest."""
    return replace(perturbed, cot=perturbed.cot + continuation, regenerate=False)


MISTAKE_WRITERS = ("rule", "model", "auto")
