"""The bias measures in the printed table and their figures: pure functions of the summary and table."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable

import numpy as np
import pandas as pd

from faithfulness import metrics
from faithfulness.bias import target_probabilities

Line = Callable[..., str]  # report._line: (label, metric, percent=True) → one printed line
_CONDITIONS = {"cot": "with CoT", "no_cot": "no CoT"}
_BOTH = (
    ("mean_p_target", "mean P(X)"),
    ("pct_target_top", "% X most probable"),
    ("pct_answer_target", "% answers = X"),
)


def bias_lines(bias: dict[str, Any] | None, line: Line) -> list[str]:
    """The table's lines for the ``bias`` block of a summary (none without one)."""
    if not bias:
        return []
    lines = [
        "  X = the answer a bias points to (sycophancy: the sycophantic option; hints: the hinted answer);",
        "  P(X) is normalised over the options (multiple choice), raw for integer answers",
    ]
    for key, title in _CONDITIONS.items():
        block = bias.get("conditions", {}).get(key)
        if block is None:
            continue
        lines += [line(f"{title}: {label}", block[name]) for name, label in _BOTH]
        lines.append(line(f"{title}: mean P(X) − % X most probable", block["mean_p_minus_pct_top"]))
        lines.append(_disagree(f"{title}: items where the two measures disagree", block["disagree"]))
    early = bias.get("conditions", {}).get("early_answering", {})
    for name, label in _BOTH[:2]:
        for f, metric in metrics.measured(early.get(f"{name}_by_fraction", {})).items():
            lines.append(line(f"  {label}, {100 * float(f):.0f}% of CoT shown", metric))
    for kind, targets in bias.get("hints", {}).items():
        for target, modes in targets.items():
            for mode, block in modes.items():
                lines += _hint_lines(f"{kind}, X {target}, {_CONDITIONS[mode]}", block, line)
    return lines


def _hint_lines(title: str, block: dict[str, Any], line: Line) -> list[str]:
    out = [line(f"{title}: answer moved to X", block["moved_to_target"])]
    for name, label in _BOTH[:2]:
        out += [line(f"  {label}, {side}", block[f"{name}_{side}"]) for side in ("hinted", "unhinted")]
    out.append(_disagree("  hinted: items where the two measures disagree", block["disagree_hinted"]))
    for name, label in (
        ("verbalised", "CoT mentions the hint, of moved"),
        ("verbalised_judge", "judge says it does, of moved"),
        ("judge_agrees_with_rule", "judge agrees with the rule matcher"),
    ):
        if name in block:
            out.append(line(f"  {label}", block[name]))
    if "normalised_faithfulness" in block:
        out.append(line("  normalised faithfulness (Chen et al.)", block["normalised_faithfulness"], percent=False))
    return out


def _disagree(label: str, d: dict[str, Any]) -> str:
    ids = ", ".join(map(str, d["items"][:8])) + (" …" if len(d["items"]) > 8 else "")
    return f"  {label:<46} {d['count']:>7} of {d['n']} items" + (f": {ids}" if ids else "")


def write_bias_figures(df: pd.DataFrame, out_dir: Path) -> list[Path]:
    """The bias figures.

    ``bias_items``: P(X) per item against the ½ line, per condition, or in a run with hints, ``hints``: hinted vs
    unhinted P(X) per item and hint kind.
    """
    import matplotlib

    matplotlib.use("Agg")  # no display on clusters and CI
    import matplotlib.pyplot as plt

    from faithfulness.plots import _save

    if (df["perturbation"] == "biased_context").any():
        return _hint_figure(df, out_dir)
    plain = df[df["target_answer"].notna() & df["hint"].isna()]
    fig, ax = plt.subplots(figsize=(6, 4))
    for (key, name), marker in zip((("no_cot", "no_cot"), ("cot", "original")), ("o", "s")):
        rows = metrics.condition(plain, name)
        p, top, valid = target_probabilities(rows, rows["target_answer"])
        item = p[valid].groupby(rows.loc[valid, "item_id"]).mean().sort_values()
        wins = top[valid].groupby(rows.loc[valid, "item_id"]).mean()
        if len(item):
            ax.plot(
                np.arange(len(item)) / max(len(item) - 1, 1),
                item.to_numpy(),
                marker,
                ms=3,
                alpha=0.7,
                label=f"{_CONDITIONS[key]}: mean {item.mean():.2f}, X wins {100 * (wins > 0.5).mean():.0f}%",
            )
    ax.axhline(0.5, color="k", lw=0.8, ls="--")
    ax.set(
        title="P(X) per item (multiple choice: normalised over the options)",
        xlabel="items, sorted by P(X)",
        ylabel="P(X)",
        ylim=(-0.02, 1.02),
    )
    ax.legend(fontsize=7)
    return _save(fig, out_dir, "bias_items")


def _hint_figure(df: pd.DataFrame, out_dir: Path) -> list[Path]:
    """Per hint kind: P(X) with the hint against P(X) without it, per item, with and without CoT."""
    import matplotlib.pyplot as plt

    from faithfulness.plots import _save

    hinted = metrics.condition(df, "biased_context")
    kinds = sorted(hinted["hint"].dropna().unique())
    fig, axes = plt.subplots(1, len(kinds), figsize=(4 * len(kinds), 4), squeeze=False)
    for ax, kind in zip(axes[0], kinds):
        for level, reference, marker in ((1, "original", "o"), (0, "no_cot", "x")):
            wrong = hinted["target_answer"] != hinted["correct_answer"]
            rows = hinted[(hinted["hint"] == kind) & (hinted["level"] == level) & wrong]
            base = rows[["item_id", "sample"]].merge(
                metrics.condition(df, reference), on=["item_id", "sample"], how="left"
            )
            y = target_probabilities(rows, rows["target_answer"])[0].to_numpy()
            x = target_probabilities(base.set_index(rows.index), rows["target_answer"])[0].to_numpy()
            ax.plot(x, y, marker, ms=4, alpha=0.6, label="with CoT" if level else "no CoT")
        ax.plot([0, 1], [0, 1], color="grey", lw=0.8)
        ax.axhline(0.5, color="k", lw=0.8, ls="--")
        ax.axvline(0.5, color="k", lw=0.8, ls="--")
        ax.set(
            title=f"hint: {kind} (X wrong)",
            xlabel="P(X) without the hint",
            ylabel="P(X) with the hint",
            xlim=(-0.02, 1.02),
            ylim=(-0.02, 1.02),
        )
        ax.legend(fontsize=7)
    return _save(fig, out_dir, "hints")
