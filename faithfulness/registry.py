"""The tests a run can ask for, registered by name: adding a test is one entry (or :func:`register` elsewhere).

Each entry says how to build the test's items from a trace (a pure function bound to the run's
settings) and how every consumer treats its rows: whether its level counts CoT steps (the rows'
``fraction``), its % same curve and AOC (metrics), its labels (the printed table, W&B) and its
figure (plots). The config check (``loading.rules``), the pipeline, rows, filler fractions, metrics,
the run summary under both answer readings (``summaries``), report, plots and W&B all read this
dict, and :func:`lookup` raises for a name nobody registered, so a new test can never silently miss
a table.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable

import pandas as pd

from faithfulness import drawing, hints, metrics
from faithfulness.config.sections import RunConfig
from faithfulness.filler import accuracy_by_fraction
from faithfulness.metrics import Options
from faithfulness.perturbations import (
    Item,
    Trace,
    original,
)
from faithfulness.stats import Clusters, at_fraction, condition
from faithfulness.tasks import Problem

Line = Callable[..., str]  # report's line: (label, figure, percent=True) → one printed line


@dataclass(frozen=True)
class Binding:
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
    """One test: how to build its items, its figures, its lines of the printed table and its figure.

    The attributes below drive the default :meth:`summarise`, :meth:`table_lines` and :meth:`draw`,
    which every test of Lanham et al.'s shape shares; a test of another shape subclasses this and
    overrides them (tests/test_registry.py registers one from a test file).

    Attributes:
        name: The config name (``perturbations=[...]``) and the rows' ``perturbation``.
        title: Its label in the printed table, figures and W&B.
        bind: Binding → the pure function trace → items.
        step_based: Its level counts CoT steps, so rows get ``fraction = level / n_steps``.
        cot_free: Its prompts do not depend on the CoT (no CoT, filler), so a greedy answer is asked
            once per distinct prompt and shared by every row that has it.
        curve: Fractions of each CoT at which % same and accuracy are summarised, and whether the
            level rounds up (⌈f·n⌉) there; None: no curve.
        curve_label: What the curve's fraction is of ("steps shown").
        aoc: Summarise the area over its % same curve (Lanham et al. 2023, §3).
        aoc_definitions: Its curve stops before the unmodified CoT, so its AOC has two definitions
            (``aoc.*`` in the config; ``faithfulness.metrics.aoc_figures``).
        reask: Its level n re-asks the full CoT: the re-ask agreement (noise gate).
        by_length: Accuracy at each level (filler length in tokens); with per-question lengths also
            accuracy by fraction of each question's CoT length (``faithfulness.filler``).
        fraction_label: What the fraction of its printed accuracy-by-fraction lines is ("of CoT
            paraphrased"); empty: no such lines.
        lines: Extra lines of the printed table: ``accuracy``, ``kappa``.
        figure: ``same_by_fraction``, ``accuracy_by_fraction``, ``accuracy_by_length`` or None (no figure of its own).
        figure_title: The figure's title.
        x_label: The figure's x axis (filler's is drawn from its string and mode by ``plots``).
    """

    name: str
    title: str
    bind: Callable[[Binding], Callable[[Trace], list[Item]]]
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

    def summarise(self, c: Clusters, df: pd.DataFrame, rows: pd.DataFrame, options: Options) -> dict[str, Any]:
        """This test's block of summary.json under one answer reading: every figure with its CI and n.

        Args:
            c: The run's questions and bootstrap settings.
            df: The whole table (a test may compare its rows with others, e.g. the re-ask of the full CoT).
            rows: This test's rows.
            options: The config's choices about the figures (the AOC definition, the step range).
        """
        block: dict[str, Any] = {
            "pct_same": metrics.pct_same(c, rows),
            "chance_corrected_agreement": metrics.chance_corrected_agreement(c, rows),
            "accuracy": metrics.accuracy(c, rows),
            "unparsed_rate": metrics.unparsed_rate(c, rows),
        }
        for column, key in (("logprob_original", "mean_p_original"), ("logprob_correct", "mean_p_correct")):
            if rows[column].notna().any():
                block[key] = metrics.mean_probability(c, rows, column)
        if rows["option_logprobs"].notna().any():
            block |= metrics.option_metrics(c, rows)
        if self.curve is not None:
            fractions, up = self.curve
            block["pct_same_by_fraction"] = {f"{f:g}": metrics.pct_same(c, at_fraction(rows, f, up)) for f in fractions}
            block["accuracy_by_fraction"] = {f"{f:g}": metrics.accuracy(c, at_fraction(rows, f, up)) for f in fractions}
        if self.aoc:
            block["aoc"] = metrics.aoc(c, rows)
        if self.reask:
            block["reask_agreement"] = metrics.pct_same(c, condition(df, self.name, "full"))
        if self.by_length:
            block["accuracy_by_length"] = {
                str(int(m)): metrics.accuracy(c, rows[rows["level"] == m]) for m in sorted(rows["level"].unique())
            }
        if self.aoc:
            definition = options.aoc_definition if self.aoc_definitions else None
            block |= metrics.aoc_figures(c, rows, definition, options.aoc_steps)
        if self.by_length and rows["fraction"].notna().any():  # per-question lengths: accuracy vs m / the CoT's length
            block["accuracy_by_fraction"] = accuracy_by_fraction(c, rows)
        return block

    def table_lines(self, block: dict[str, Any], line: Line, beside: str = "") -> list[str]:
        """This test's lines of the printed table, from its summary block.

        Args:
            block: This test's block of summary.json (:meth:`summarise`).
            line: Formats one figure: (label, figure, percent=True) → a line.
            beside: Said after each % same figure (the noise floor of a sampled run).
        """
        title, out = self.title, []
        if "accuracy" in self.lines:
            out.append(line(f"{title}: accuracy", block["accuracy"]))
        out.append(line(f"{title}: % same answer as original", block["pct_same"]) + beside)
        if "kappa" in self.lines:
            out.append(
                line(f"{title}: κ, chance-corrected agreement", block["chance_corrected_agreement"], percent=False)
            )
        for f, metric in metrics.measured(block.get("pct_same_by_fraction", {})).items():
            out.append(line(f"  % same, {100 * float(f):.0f}% of CoT {self.curve_label}", metric) + beside)
        for f, metric in metrics.measured(block.get("accuracy_by_fraction", {})).items() if self.fraction_label else ():
            out.append(line(f"  accuracy, {100 * float(f):.0f}% {self.fraction_label}", metric))
        for length, metric in (
            block.get("accuracy_by_length", {}).items() if "accuracy_by_fraction" not in block else ()
        ):
            out.append(line(f"  accuracy, {length} filler tokens", metric))
        if "aoc" in block:
            definition = f" ({block['aoc_definition'].replace('_', ' ')})" if "aoc_definition" in block else ""
            out.append(line(f"{title}: AOC{definition}", block["aoc"], percent=False))
        if "aoc_filtered" in block:
            low, high = block["aoc_filtered"]["steps"]
            out.append(line(f"{title}: AOC, CoTs of {low}–{high} steps", block["aoc_filtered"], percent=False))
        if "reask_agreement" in block:
            out.append(line(f"{title}: re-ask agreement (full CoT)", block["reask_agreement"]))
        if "mean_p_original" in block:
            out.append(line(f"{title}: mean P(original answer)", block["mean_p_original"]))
        if "mean_p_original_normalised" in block:
            out.append(line(f"{title}: mean P(original letter), over options", block["mean_p_original_normalised"]))
            out.append(line(f"{title}: % original letter most probable", block["pct_original_top"]))
        return out

    def draw(self, ax: Any, df: pd.DataFrame, summary: dict[str, Any]) -> None:
        """This test's figure (``figure`` set) on ``ax``, from its rows and the run's summary."""
        m, name = summary["metrics"], self.name
        if self.figure == "same_by_fraction":
            drawing.same_curves(ax, condition(df, name), m[name]["pct_same_by_fraction"])
            ax.set(ylabel="% same answer as original", ylim=(-5, 105))
        elif self.figure == "accuracy_by_length":
            # m up to each question's own CoT length (the paper's axis)
            per_question = "accuracy_by_fraction" in m[name]
            curve = m[name]["accuracy_by_fraction" if per_question else "accuracy_by_length"]
            drawing.band(ax, [float(k) for k in curve], list(curve.values()), f"with {self.title}", "o-")
            drawing.reference_lines(ax, m)
            filler = repr(summary.get("filler_string") or " ...")
            xlabel = (
                f"filler length / the question's longest CoT (tokens of {filler})"
                if per_question
                else f"filler length ({filler} tokens)"
            )
            ax.set(xlabel=xlabel, ylabel="accuracy (%)")
        else:
            by_fraction = m[name]["accuracy_by_fraction"]
            drawing.band(ax, [float(k) for k in by_fraction], list(by_fraction.values()), self.curve_label, "o-")
            drawing.reference_lines(ax, m)
            ax.set(ylabel="accuracy (%)")
        ax.set(title=self.figure_title, **({} if self.figure == "accuracy_by_length" else {"xlabel": self.x_label}))


# the reference every test compares against; the tests register themselves (faithfulness/suite)
TESTS: dict[str, FaithfulnessTest] = {
    "original": FaithfulnessTest("original", "original CoT", lambda s: original, step_based=True)
}


def register(test: FaithfulnessTest) -> FaithfulnessTest:
    """Adds a test to the registry: ``perturbations=[<its name>]`` then runs it, and every table and figure shows it."""
    TESTS[test.name] = test
    return test


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
