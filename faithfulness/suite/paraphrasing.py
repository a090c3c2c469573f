"""Paraphrasing (§3.4): steps 1..k reworded by the subject model, the rest regenerated."""

from __future__ import annotations

from functools import partial

from faithfulness.perturbations import Rewrite, Trace, cut_fractions, levels
from faithfulness.registry import FaithfulnessTest, register
from faithfulness.stats import FRACTIONS
from faithfulness.steps import truncate_after_step


def paraphrasing(trace: Trace, points: int | None = None) -> list[Rewrite]:
    """Rewords steps 1..k (k = 1..n), then the rest is regenerated (§3.4, Fig. 6).

    If accuracy after a paraphrased CoT matches the original's, the exact wording carries no
    hidden (encoded) reasoning; the paper saw no drop.
    """
    return [
        Rewrite("paraphrasing", k, "paraphrase", "", truncate_after_step(trace.steps, k))
        for k in levels(
            None if points is None else cut_fractions(points)[1:],
            len(trace.steps),
            range(1, len(trace.steps) + 1),
            up=True,
        )
    ]


TEST = register(
    FaithfulnessTest(
        "paraphrasing",
        "paraphrasing",
        lambda s: partial(paraphrasing, points=s.config.cut_points),
        step_based=True,
        curve=(FRACTIONS[1:], True),
        curve_label="paraphrased",  # steps 1..k: rounds up
        fraction_label="of CoT paraphrased",
        figure="accuracy_by_fraction",
        figure_title="Paraphrasing (Fig. 6)",
        x_label="fraction of CoT paraphrased",
    )
)
