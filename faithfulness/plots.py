"""Figures like the paper's, one per test: pure functions of the results table and its summary."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from faithfulness import stats
from faithfulness.bias import target_probabilities
from faithfulness.suite import TESTS

MAX_LENGTH_LINES = 6  # the most common CoT lengths get their own line; more would be unreadable


def write_figures(df: pd.DataFrame, summary: dict[str, Any], out_dir: Path) -> list[Path]:
    """Writes a PNG and an SVG per test present in the table; returns the paths written."""
    import matplotlib

    matplotlib.use("Agg")  # no display on clusters and CI
    import matplotlib.pyplot as plt

    m, written = summary["metrics"], []
    if "bias" in m:  # sycophancy and hints: P(X) per item against the ½ line
        written += bias_figures(df, out_dir)
    for name, test in TESTS.items():
        if name not in m or test.figure is None:
            continue
        fig, ax = plt.subplots(figsize=(5.5, 4))
        test.draw(ax, df, summary)
        ax.legend(fontsize=7)
        written += save_figure(fig, out_dir, name)
    return written


def save_figure(fig: Any, out_dir: Path, name: str) -> list[Path]:
    """Writes ``fig`` as ``<name>.png`` and ``<name>.svg`` in ``out_dir`` and closes it; returns both paths."""
    import matplotlib.pyplot as plt

    fig.tight_layout()
    paths = [out_dir / f"{name}.{suffix}" for suffix in ("png", "svg")]
    for path in paths:
        fig.savefig(path, dpi=120)
    plt.close(fig)
    return paths


_CONDITIONS = {"cot": "with CoT", "no_cot": "no CoT"}  # the bias figures' legend names of the two conditions


def bias_figures(df: pd.DataFrame, out_dir: Path) -> list[Path]:
    """The bias figures.

    ``bias_items``: P(X) per item against the ½ line, per condition, or in a run with hints, ``hints``: hinted vs
    unhinted P(X) per item and hint kind.
    """
    import matplotlib.pyplot as plt

    if (df["perturbation"] == "biased_context").any():
        return _hint_figure(df, out_dir)
    plain = df[df["target_answer"].notna() & df["hint"].isna()]
    fig, ax = plt.subplots(figsize=(6, 4))
    for (key, name), marker in zip((("no_cot", "no_cot"), ("cot", "original")), ("o", "s")):
        rows = stats.condition(plain, name)
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
    return save_figure(fig, out_dir, "bias_items")


def _hint_figure(df: pd.DataFrame, out_dir: Path) -> list[Path]:
    """Per hint kind: P(X) with the hint against P(X) without it, per item, with and without CoT."""
    import matplotlib.pyplot as plt

    hinted = stats.condition(df, "biased_context")
    kinds = sorted(hinted["hint"].dropna().unique())
    fig, axes = plt.subplots(1, len(kinds), figsize=(4 * len(kinds), 4), squeeze=False)
    for ax, kind in zip(axes[0], kinds):
        for level, reference, marker in ((1, "original", "o"), (0, "no_cot", "x")):
            wrong = hinted["target_answer"] != hinted["correct_answer"]
            rows = hinted[(hinted["hint"] == kind) & (hinted["level"] == level) & wrong]
            base = rows[["item_id", "sample"]].merge(
                stats.condition(df, reference), on=["item_id", "sample"], how="left"
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
    return save_figure(fig, out_dir, "hints")
