"""The tests a run can ask for, in one dict: adding a test is one entry here.

Each entry says how to build the test's items from a trace (a pure function bound to the run's
settings) and how every consumer treats its rows: whether its level counts CoT steps (the rows'
``fraction``), its % same curve and AOC (metrics), its labels (the printed table, W&B) and its
figure (plots). The config check (``config.rules``), the pipeline, rows, filler fractions, metrics,
the run summary under both answer readings (``summaries``), report, plots and W&B all read this
dict, and :func:`lookup` raises for a name nobody registered, so a new test can never silently miss
a table.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import partial
from typing import Any, Callable

import numpy as np

from faithfulness import hints
from faithfulness.config.sections import RunConfig
from faithfulness.perturbations import (
    Item,
    Trace,
    adding_mistakes,
    early_answering,
    filler_tokens,
    no_cot,
    original,
    paraphrasing,
)
from faithfulness.tasks import Problem

FRACTIONS = (0.0, 0.25, 0.5, 0.75, 1.0)  # x-axis points of the printed curves (metrics.FRACTIONS)


@dataclass(frozen=True)
class Settings:
    """What binding a test to a run needs.

    Attributes:
        config: The run's config.
        filler: The filler plan of this run (``faithfulness.filler.plan``: ``string``, the run's
            ``lengths`` and, per question, ``per_item``).
        problems: The run's problems by item id (with their hint targets set).
        hint_templates: The configured hints (``biased_context``), already checked.
    """

    config: RunConfig
    filler: dict[str, Any] = field(default_factory=lambda: {"string": None, "lengths": [], "per_item": None})
    problems: dict[int, Problem] = field(default_factory=dict)
    hint_templates: list[hints.HintTemplate] = field(default_factory=list)


@dataclass(frozen=True)
class FaithfulnessTest:
    """One test: how to build it and how to show it.

    Attributes:
        name: The config name (``perturbations=[...]``) and the rows' ``perturbation``.
        title: Its label in the printed table, figures and W&B.
        bind: Settings → the pure function trace → items.
        step_based: Its level counts CoT steps, so rows get ``fraction = level / n_steps``.
        cot_free: Its prompts do not depend on the CoT (no CoT, filler), so a greedy answer is asked
            once per distinct prompt and shared by every row that has it.
        curve: Fractions of each CoT at which % same and accuracy are summarised, and whether the
            level rounds up (⌈f·n⌉) there; None: no curve.
        curve_label: What the curve's fraction is of ("steps shown").
        aoc: Summarise the area over its % same curve (Lanham et al. 2023, §3).
        aoc_definitions: Its curve stops before the unmodified CoT, so its AOC has two definitions
            (``aoc.*`` in the config; ``faithfulness.summaries.aoc_figures``).
        reask: Its level n re-asks the full CoT: the re-ask agreement (noise gate).
        by_length: Accuracy at each level (filler length in tokens); with per-question lengths also
            accuracy by fraction of each question's CoT length (``faithfulness.filler``).
        fraction_label: What the fraction of its printed accuracy-by-fraction lines is ("of CoT
            paraphrased"); empty: no such lines.
        lines: Extra lines of the printed table: ``accuracy``, ``kappa``.
        figure: ``same_by_fraction``, ``accuracy_by_fraction``, ``accuracy_by_length``, ``hints`` or None.
        figure_title: The figure's title.
        x_label: The figure's x axis (filler's is drawn from its string and mode by ``plots``).
    """

    name: str
    title: str
    bind: Callable[[Settings], Callable[[Trace], list[Item]]]
    step_based: bool = False
    cot_free: bool = False
    curve: tuple[tuple[float, ...], bool] | None = None
    curve_label: str = ""
    aoc: bool = False
    aoc_definitions: bool = False
    reask: bool = False
    by_length: bool = False
    fraction_label: str = ""
    lines: tuple[str, ...] = ()
    figure: str | None = None
    figure_title: str = ""
    x_label: str = ""


def _rng(s: Settings, trace: Trace) -> np.random.Generator:
    return np.random.default_rng([s.config.seed, trace.item_id, trace.sample])  # per trace, not per batch


def _filler(s: Settings) -> Callable[[Trace], list[Item]]:
    plan = s.filler  # per question (the paper's): each question's own lengths; run mode: one list for all
    return lambda t: filler_tokens(
        t, plan["per_item"][t.item_id] if plan["per_item"] else plan["lengths"], plan["string"]
    )


def _biased_context(s: Settings) -> Callable[[Trace], list[Item]]:
    targets = list(s.config.biased_context.targets) if s.config.biased_context else []  # rules.load: set when it runs
    return lambda t: list(hints.biased_context(t, s.problems[t.item_id], s.hint_templates, targets))


_T = FaithfulnessTest
TESTS: dict[str, FaithfulnessTest] = {
    entry.name: entry
    for entry in (
        _T("original", "original CoT", lambda s: original, step_based=True),  # the reference of every test
        _T("no_cot", "no CoT", lambda s: no_cot, cot_free=True, lines=("accuracy", "kappa")),
        _T(
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
        ),
        _T(
            "adding_mistakes",
            "adding mistakes",  # a mistake sits in step k = 0..n-1
            lambda s: lambda t: adding_mistakes(t, _rng(s, t), s.config.mistakes.writer, s.config.cut_points),
            step_based=True,
            curve=(FRACTIONS[:-1], False),
            curve_label="before the mistake",
            aoc=True,
            aoc_definitions=True,
            figure="same_by_fraction",
            figure_title="Adding mistakes (Fig. 4)",
            x_label="fraction of CoT before the mistake",
        ),
        _T(
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
        ),
        _T(
            "filler_tokens",
            "filler tokens",
            _filler,
            cot_free=True,
            by_length=True,
            fraction_label="of its CoT's length in filler",
            lines=("accuracy",),
            figure="accuracy_by_length",
            figure_title="Filler tokens (Fig. 5)",
            x_label="filler length (tokens)",
        ),
        _T(
            "biased_context",
            "biased context",
            _biased_context,
            figure="hints",
            figure_title="Biased context: P(hinted answer) per item",
            x_label="P(X) without the hint",
        ),
    )
}


def lookup(name: str) -> FaithfulnessTest:
    """The registered test called ``name``.

    Raises:
        KeyError: naming the test and this module, for rows or summaries of a test nobody registered.
    """
    if name not in TESTS:
        raise KeyError(
            f"perturbation {name!r} is not registered in faithfulness/registry.py (registered: {sorted(TESTS)})"
        )
    return TESTS[name]


def choosable() -> list[str]:
    """The names ``perturbations=[...]`` accepts (every test but the original it compares against)."""
    return sorted(name for name in TESTS if name != "original")
