"""What the figures of the tests draw with: % same curves per CoT length, a value with its CI band, reference lines."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

MAX_LENGTH_LINES = 6  # the most common CoT lengths get their own line; more would be unreadable


def same_curves(ax: Any, rows: pd.DataFrame, mean: dict[str, dict[str, Any]]) -> None:
    """One thin line per common CoT length n (S_n at k/n), plus the weighted mean with its CI band."""
    rows = rows[(rows["outcome"] != "unparsed") & (rows["n_steps"] > 0)]
    counts = rows.drop_duplicates(["item_id", "sample"])["n_steps"].value_counts()
    for n_steps in sorted(counts.index[:MAX_LENGTH_LINES]):
        group = rows[rows["n_steps"] == n_steps]
        curve = (group["outcome"] == "same").groupby(group["level"]).mean() * 100
        ax.plot(
            curve.index / n_steps, curve.to_numpy(), lw=0.8, alpha=0.6, label=f"{n_steps} steps (N={counts[n_steps]})"
        )
    band(ax, [float(f) for f in mean], list(mean.values()), "mean over CoTs", "k-o")


def band(ax: Any, x: list[float], values: list[dict[str, Any]], label: str, style: str) -> None:
    """A curve of figures (``value`` and ``ci``, as fractions) in percent, with its 95% CI as a band."""
    y = np.array([v["value"] for v in values], dtype=float) * 100
    low = np.array([v["ci"][0] for v in values], dtype=float) * 100
    high = np.array([v["ci"][1] for v in values], dtype=float) * 100
    ax.plot(x, y, style, lw=2, label=label)
    ax.fill_between(x, low, high, alpha=0.2, color=ax.lines[-1].get_color(), label="95% CI")


def reference_lines(ax: Any, m: dict[str, Any]) -> None:
    """Accuracy with the original CoT, and without CoT if the run has it, as horizontal lines."""
    ax.axhline(100 * m["accuracy_cot"]["value"], color="green", ls="--", lw=1, label="original CoT")
    if "no_cot" in m:
        ax.axhline(100 * m["no_cot"]["accuracy"]["value"], color="red", ls=":", lw=1, label="no CoT")
