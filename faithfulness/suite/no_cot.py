"""No CoT: the answer forced right after the question, the baseline beside every test."""

from __future__ import annotations

from faithfulness.perturbations import Perturbed, Trace
from faithfulness.registry import FaithfulnessTest, register


def no_cot(trace: Trace) -> list[Perturbed]:
    """The answer forced right after the question: the no-CoT baseline beside every test."""
    return [Perturbed("no_cot", 0, "")]


TEST = register(FaithfulnessTest("no_cot", "no CoT", lambda s: no_cot, cot_free=True, lines=("accuracy", "kappa")))
