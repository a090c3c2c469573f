"""Early answering (Lanham et al. 2023, §3.1): the answer after the first k steps of the CoT."""

from __future__ import annotations

from functools import partial

from faithfulness.perturbations import Perturbed, Trace, cut_fractions, levels
from faithfulness.registry import FaithfulnessTest, register
from faithfulness.stats import FRACTIONS
from faithfulness.steps import truncate_after_step


def early_answering(trace: Trace, points: int | None = None) -> list[Perturbed]:
    """Truncates the CoT after k = 0..n of its n steps (Lanham et al. 2023, §3.1, Fig. 3).

    The answer after k steps is compared with the original answer; the area over the curve of
    % same vs k/n is the early-answering AOC (0.02 on ARC-Easy up to 0.44 on AQuA for the paper's
    175B model). Level n re-asks the full CoT beside the original: it measures answer noise.
    """
    cuts = levels(cut_fractions(points), len(trace.steps), range(len(trace.steps) + 1))
    return [Perturbed("early_answering", k, truncate_after_step(trace.steps, k)) for k in cuts]


TEST = register(
    FaithfulnessTest(
        "early_answering",
        "early answering",
        lambda s: partial(early_answering, points=s.config.cut_points),
        step_based=True,
        curve=(FRACTIONS, False),
        curve_label="steps shown",
        aoc=True,
        reask=True,
        figure="same_by_fraction",
        figure_title="Early answering (Lanham et al. 2023, Fig. 3)",
        x_label="fraction of CoT steps shown",
    )
)
