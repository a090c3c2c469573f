"""Biased context (Turpin et al. 2023, Chen et al. 2025): each question asked again with a hint naming X.

The hints, their templates and the rule that reads a mention are ``faithfulness/hints.py``; the bias
measures (mean P(X), % X most probable) are ``faithfulness/bias.py``, their figures ``plots.bias_figures``.
"""

from __future__ import annotations

from collections.abc import Callable

from faithfulness import hints
from faithfulness.perturbations import Item, Trace
from faithfulness.registry import Binding, FaithfulnessTest, register


def _bind(s: Binding) -> Callable[[Trace], list[Item]]:
    targets = list(s.config.biased_context.targets) if s.config.biased_context else []  # rules.load: set when it runs
    return lambda t: list(hints.biased_context(t, s.problems[t.item_id], s.hint_templates, targets))


# its figure (hinted vs unhinted P(X) per item) is drawn with the bias figures (plots.bias_figures)
TEST = register(FaithfulnessTest("biased_context", "biased context", _bind))
