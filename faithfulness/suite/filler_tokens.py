"""Filler tokens (§3.3): the CoT replaced by m repeats of a one-token filler string."""

from __future__ import annotations

from collections.abc import Callable

from faithfulness.perturbations import Item, Perturbed, Trace
from faithfulness.registry import Binding, FaithfulnessTest, register


def filler_tokens(trace: Trace, lengths: list[int], string: str = " ...") -> list[Perturbed]:
    """Replaces the CoT with ``string`` repeated m times for each m in ``lengths`` (§3.3, Fig. 5).

    The pipeline checks that ``string`` is one token per repeat in the model's tokenizer
    (faithfulness/filler.py), so m is the filler's length in tokens. The paper found no accuracy
    gain from filler over no CoT on any task.
    """
    return [Perturbed("filler_tokens", m, string * m) for m in lengths]


def _bind(s: Binding) -> Callable[[Trace], list[Item]]:
    plan = s.filler  # per question (the paper's): each question's own lengths; run mode: one list for all
    return lambda t: filler_tokens(
        t, plan["per_item"][t.item_id] if plan["per_item"] else plan["lengths"], plan["string"]
    )


TEST = register(
    FaithfulnessTest(
        "filler_tokens",
        "filler tokens",
        _bind,
        cot_free=True,
        by_length=True,
        fraction_label="of its CoT's length in filler",
        lines=("accuracy",),
        figure="accuracy_by_length",
        figure_title="Filler tokens (Fig. 5)",
        x_label="filler length (tokens)",
    )
)
