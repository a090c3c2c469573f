"""A study's figures: % same without CoT against model size, and the model × difficulty heatmap."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from faithfulness.plots import save_figure
from faithfulness.study.aggregate import difficulty_order


def write_study_figures(cells: pd.DataFrame, out_dir: Path) -> list[Path]:
    """The size × difficulty figures of an aggregated study (a PNG and an SVG each).

    * ``scaling``: % same answer with vs without CoT against model size (log x), one line per
      difficulty and a panel per family: the paper's scaling figure (§4; lower = more faithful).
    * ``heatmap``: model × difficulty, % same without CoT beside the chance-corrected κ.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    cells = cells.assign(difficulty=[f"{t} {d}" for t, d in zip(cells["task"], cells["difficulty"])])
    cells = cells.assign(_order=[(t, difficulty_order(d)) for t, d in zip(cells["task"], cells["difficulty"])])
    families = sorted(cells["model_family"].fillna("").unique())
    fig, axes = plt.subplots(1, len(families), figsize=(5.5 * len(families), 4), squeeze=False)
    for ax, family in zip(axes[0], families):
        group = cells[cells["model_family"].fillna("") == family]
        for difficulty, line in group.sort_values("_order").groupby("difficulty", sort=False):
            line = line.sort_values("model_size")
            y = 100 * line["pct_same_no_cot"].to_numpy(dtype=float)
            err = 100 * np.abs(line[["pct_same_no_cot_low", "pct_same_no_cot_high"]].to_numpy(dtype=float).T - y / 100)
            ax.errorbar(line["model_size"].astype(float), y, yerr=err, marker="o", capsize=3, label=difficulty)
        ax.set_xscale("log")
        ax.set(
            title=f"{family or 'unknown family'}: answer without CoT = with CoT",
            xlabel="parameters",
            ylabel="% same answer (lower = more faithful)",
            ylim=(-5, 105),
        )
        ax.legend(title="task and difficulty", fontsize=7)
    return save_figure(fig, out_dir, "scaling") + _heatmap(cells, out_dir)


def _heatmap(cells: pd.DataFrame, out_dir: Path) -> list[Path]:
    """Model × difficulty: % same without CoT beside the chance-corrected κ, one colour scale for every study."""
    import matplotlib.pyplot as plt

    table = cells.sort_values(["model_family", "model_size"])
    models = list(dict.fromkeys(table["model"]))
    difficulties = list(dict.fromkeys(table.sort_values("_order")["difficulty"]))
    fig, axes = plt.subplots(1, 2, figsize=(3 + 1.6 * len(difficulties), 1.5 + 0.5 * len(models)), squeeze=False)
    for ax, (column, title, scale, cmap) in zip(
        axes[0],
        (
            ("pct_same_no_cot", "% same without CoT", 100, "viridis"),
            ("kappa_no_cot", "κ (chance-corrected)", 1, "magma"),
        ),
    ):
        grid = table.pivot_table(index="model", columns="difficulty", values=column).reindex(
            index=models, columns=difficulties
        )
        values = grid.to_numpy(dtype=float) * scale
        ax.imshow(values, cmap=cmap, aspect="auto", vmin=0, vmax=scale)  # one scale for every study
        for (i, j), v in np.ndenumerate(values):
            ax.text(
                j,
                i,
                "n/a" if np.isnan(v) else f"{v:.0f}" if scale == 100 else f"{v:.2f}",
                ha="center",
                va="center",
                color="k" if v > 0.6 * scale else "w",
            )
        ax.set(title=title, xticks=range(len(difficulties)), yticks=range(len(models)))
        ax.set_xticklabels(difficulties, fontsize=8)
        ax.set_yticklabels(models, fontsize=8)
    return save_figure(fig, out_dir, "heatmap")
