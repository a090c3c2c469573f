"""The statistics every figure shares: the question-clustered bootstrap, rates, conditions, option shares.

A leaf: it imports nothing of the project, so the metrics of every test (``metrics``, ``bias``,
``filler``) build on it without importing one another.
"""

from __future__ import annotations

import json
import warnings
from typing import Any, Callable

import numpy as np
import pandas as pd
from scipy import stats

FRACTIONS = (0.0, 0.25, 0.5, 0.75, 1.0)  # x-axis points of the printed curves
Stat = Callable[[np.ndarray], np.ndarray]  # resampled item indices (B, I) → statistic (B,)


class Clusters:
    """The questions of a run, and the bootstrap over them.

    Args:
        df: The results table (any rows; its ``item_id`` values define the clusters).
        resamples: Bootstrap resamples per CI (0 disables CIs).
        seed: Seed of the resampling, so a CI is reproducible.
    """

    def __init__(self, df: pd.DataFrame, resamples: int = 1000, seed: int = 0) -> None:
        self.items = np.sort(df["item_id"].unique())
        self.resamples = resamples
        self.seed = seed

    def codes(self, rows: pd.DataFrame) -> np.ndarray:
        """Cluster index of each row."""
        return np.searchsorted(self.items, rows["item_id"].to_numpy())

    def per_item(self, rows: pd.DataFrame, values: np.ndarray) -> np.ndarray:
        """Sums ``values`` (one per row) within each question."""
        return np.bincount(self.codes(rows), weights=values.astype(float), minlength=len(self.items))

    def estimate(self, stat: Stat, n: int, unparsed: int | None = None) -> dict[str, object]:
        """The statistic on all questions, its percentile bootstrap CI, and its n."""
        everyone = np.arange(len(self.items))[None, :]
        value = float(stat(everyone)[0])
        low = high = float("nan")
        if self.resamples and n and len(self.items) > 1 and np.isfinite(value):
            with np.errstate(invalid="ignore", divide="ignore"), warnings.catch_warnings():
                warnings.simplefilter("ignore", stats.DegenerateDataWarning)  # constant statistic: CI is [v, v]
                result = stats.bootstrap(
                    (np.arange(len(self.items)),),
                    lambda idx, axis=-1: stat(np.atleast_2d(idx)),
                    vectorized=True,
                    method="percentile",
                    n_resamples=self.resamples,
                    batch=250,
                    random_state=np.random.default_rng(self.seed),
                )
            low, high = float(result.confidence_interval.low), float(result.confidence_interval.high)
        out: dict[str, object] = {"value": value, "ci": [low, high], "n": n}
        if unparsed is not None:
            out["unparsed"] = unparsed
        return out


def rate(clusters: Clusters, rows: pd.DataFrame, hits: pd.Series, valid: pd.Series) -> dict[str, object]:
    """Share of ``hits`` among ``valid`` rows, with a clustered CI (a ratio of per-question sums)."""
    valid_np = valid.to_numpy(dtype=bool)
    return clusters.estimate(rate_stat(clusters, rows, hits, valid), int(valid_np.sum()), int((~valid_np).sum()))


def rate_stat(clusters: Clusters, rows: pd.DataFrame, hits: pd.Series, valid: pd.Series) -> Stat:
    """The statistic behind :func:`rate`, for combining with others (e.g. a paired difference)."""
    valid_np = valid.to_numpy(dtype=bool)
    h = clusters.per_item(rows[valid_np], hits.to_numpy(dtype=float, na_value=0.0)[valid_np])
    c = clusters.per_item(rows[valid_np], np.ones(int(valid_np.sum())))

    def stat(idx: np.ndarray) -> np.ndarray:
        with np.errstate(invalid="ignore", divide="ignore"):
            return h[idx].sum(-1) / c[idx].sum(-1)

    return stat


def condition(df: pd.DataFrame, perturbation: str, level: str | int | None = None) -> pd.DataFrame:
    """Rows of one condition; ``level`` may be an int, ``"full"`` (k = n_steps) or None (all)."""
    rows = df[df["perturbation"] == perturbation]
    if level == "full":
        return rows[rows["level"] == rows["n_steps"]]
    if level is not None:
        return rows[rows["level"] == level]
    return rows


def share(c: Clusters, rows: pd.DataFrame, hits: pd.Series, among: pd.Series) -> dict[str, Any]:
    """Share of ``hits`` among the ``among`` rows, with its clustered CI; n counts ``among``.

    Unlike :func:`rate`, the rows outside ``among`` are not reported as unparsed: they
    are outside the question (e.g. pairs whose unhinted answer already was X).
    """
    return c.estimate(rate_stat(c, rows, hits, among), int(among.to_numpy(dtype=bool).sum()))


def at_fraction(rows: pd.DataFrame, fraction: float, up: bool = False) -> pd.DataFrame:
    """Rows at level ⌊fraction · n⌋ (⌈fraction · n⌉ with ``up``) of each CoT of n steps.

    CoTs without steps are left out; the 1e-9 keeps 0.75 · 4 at 3 despite float rounding.
    """
    rows = rows[rows["n_steps"] > 0]
    x = fraction * rows["n_steps"].astype(float)
    level = np.ceil(x - 1e-9) if up else np.floor(x + 1e-9)
    return rows[rows["level"] == level.astype(int)]


def option_share(option_logprobs: str, letter: str) -> tuple[float, bool] | None:
    """P(``letter``) normalised over the options, and whether no option is more probable; None if not scored.

    ``option_logprobs`` is the rows' JSON of each option letter's teacher-forced log-probability.
    """
    lp = json.loads(option_logprobs)
    if letter not in lp:
        return None
    values = np.array(list(lp.values()), dtype=float)
    return float(np.exp(lp[letter] - np.logaddexp.reduce(values))), bool(lp[letter] >= values.max())
