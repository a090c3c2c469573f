"""The statistics every figure shares: the question-clustered bootstrap, rates, conditions, option shares.

A leaf: it imports nothing of the project, so the metrics of every test (``metrics``, ``bias``,
``filler``) build on it without importing one another.
"""

from __future__ import annotations

import json
import warnings
from dataclasses import dataclass
from typing import Any, Callable

import numpy as np
import pandas as pd
from scipy import stats

FRACTIONS = (0.0, 0.25, 0.5, 0.75, 1.0)  # x-axis points of the printed curves
Stat = Callable[[np.ndarray], np.ndarray]  # resampled item indices (B, I) → statistic (B,)
CI_LEVEL = 0.95  # every interval of the project is a two-sided 95% percentile interval
# An interval needs at least half of its resamples defined. Below that the figure is undefined in a
# typical resample of the questions, so the defined ones are the exception (the resamples that happen
# to draw the few questions it rests on) and their spread says little about the figure; at or above
# it, the percentiles of the defined resamples are the interval (docs/protocol.md, "Undefined resamples").
MIN_DEFINED_SHARE = 0.5


@dataclass(frozen=True)
class Interval:
    """A percentile interval from the resamples where the figure is defined.

    Attributes:
        low: Lower bound (NaN: no interval, see :attr:`reason`).
        high: Upper bound (NaN: no interval).
        undefined: Resamples where the figure is undefined (NaN or infinite), left out of the interval.
        resamples: Resamples drawn.
    """

    low: float
    high: float
    undefined: int
    resamples: int

    @property
    def reason(self) -> str | None:
        """Why there is no interval; None when there is one."""
        if self.low == self.low:
            return None
        return undefined_note(self.undefined, self.resamples, False) or "no CI: no resamples"


def percentile_interval(draws: np.ndarray, level: float = CI_LEVEL) -> Interval:
    """The percentile interval of ``draws`` (one statistic per resample) over the defined ones.

    The one rule for undefined resamples (a rate over a subset that a resample leaves empty, a ρ of
    constant values): they are left out and counted; with fewer than :data:`MIN_DEFINED_SHARE` of
    the resamples defined there is no interval. Every CI of the project goes through here.

    Args:
        draws: The statistic on each resample, NaN where it is undefined.
        level: Two-sided confidence level.

    Returns:
        The bounds (scipy's linear quantiles, as ``scipy.stats.bootstrap`` takes them), or NaN bounds
        when too few resamples are defined, with the count of undefined resamples.
    """
    draws = np.asarray(draws, dtype=float).ravel()
    defined = draws[np.isfinite(draws)]
    undefined = len(draws) - len(defined)
    if not len(defined) or len(defined) < MIN_DEFINED_SHARE * len(draws):
        return Interval(float("nan"), float("nan"), undefined, len(draws))
    alpha = (1 - level) / 2
    low, high = stats.quantile(defined, np.array([alpha, 1 - alpha]))
    return Interval(float(low), float(high), undefined, len(draws))


def undefined_note(undefined: int, resamples: int, interval: bool) -> str:
    """What every table says beside an interval about its undefined resamples ("" when none were).

    Args:
        undefined: Resamples where the figure is undefined.
        resamples: Resamples drawn.
        interval: Whether the figure has an interval (False: say why not).
    """
    if not undefined:
        return ""
    counted = f"{undefined} of {resamples} resamples undefined"
    return counted if interval else f"no CI: {counted}, fewer than {MIN_DEFINED_SHARE:.0%} defined"


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
        """The statistic on all questions, its percentile bootstrap CI, and its n.

        The CI follows :func:`percentile_interval`; when some resamples are undefined the figure also
        gets ``ci_undefined`` (their count) and ``ci_resamples`` (of how many), and only then, so a
        figure without undefined resamples keeps exactly the keys it had.
        """
        everyone = np.arange(len(self.items))[None, :]
        value = float(stat(everyone)[0])
        interval = None
        if self.resamples and n and len(self.items) > 1 and np.isfinite(value):
            interval = percentile_interval(self.draws(stat))
        out: dict[str, object] = {"value": value, "ci": [float("nan")] * 2, "n": n}
        if interval is not None:
            out["ci"] = [interval.low, interval.high]
        if unparsed is not None:
            out["unparsed"] = unparsed
        if interval is not None and interval.undefined:
            out |= {"ci_undefined": interval.undefined, "ci_resamples": interval.resamples}
        return out

    def draws(self, stat: Stat) -> np.ndarray:
        """The statistic on each of ``resamples`` resamples of the questions (NaN where undefined)."""
        with np.errstate(invalid="ignore", divide="ignore"), warnings.catch_warnings():
            # scipy's own interval (unused: ours drops undefined resamples) warns on NaN and constant draws
            warnings.simplefilter("ignore", stats.DegenerateDataWarning)
            result = stats.bootstrap(
                (np.arange(len(self.items)),),
                lambda idx, axis=-1: stat(np.atleast_2d(idx)),
                vectorized=True,
                method="percentile",
                n_resamples=self.resamples,
                batch=250,
                random_state=np.random.default_rng(self.seed),
            )
        return np.asarray(result.bootstrap_distribution, dtype=float)


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
