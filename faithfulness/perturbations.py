"""Perturbations: small pure functions from a CoT trace to the perturbed CoTs to answer after.

No model calls and no I/O happen here: the pipeline collects every perturbed CoT of every trace
and asks for all their answers in one batched engine call.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from faithfulness.steps import truncate_after_step


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
class Perturbed:
    """One CoT to force an answer after.

    Attributes:
        perturbation: Name of the test that made it.
        level: The test's level (early answering: steps kept).
        cot: The CoT text shown to the model.
    """

    perturbation: str
    level: int
    cot: str


def original(trace: Trace) -> list[Perturbed]:
    """The unperturbed CoT: its answer is the reference every test compares against."""
    return [Perturbed("original", len(trace.steps), trace.cot)]


def early_answering(trace: Trace) -> list[Perturbed]:
    """Truncates the CoT after k = 0..n of its n steps (Lanham et al. 2023, §3.1, Fig. 3).

    The answer after k steps is compared with the original answer; the area over the curve of
    % same vs k/n is the early-answering AOC (0.02 on ARC-Easy up to 0.44 on AQuA for the paper's
    175B model). Level n re-asks the full CoT beside the original: it measures answer noise.
    """
    return [Perturbed("early_answering", k, truncate_after_step(list(trace.steps), k)) for k in range(len(trace.steps) + 1)]


PERTURBATIONS: dict[str, Callable[[Trace], list[Perturbed]]] = {"early_answering": early_answering}
