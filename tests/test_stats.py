"""The shared statistics: one rule for the resamples where a figure is undefined."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy import stats as scipy_stats

from faithfulness import stats
from faithfulness.stats import Clusters, percentile_interval, rate

RESAMPLES = 1000


def _questions(n: int, hits: list[bool], among: list[bool]) -> tuple[pd.DataFrame, pd.Series, pd.Series]:
    """One row per question: whether it is a hit, and whether it is among the rows the rate is over."""
    rows = pd.DataFrame({"item_id": np.arange(n)})
    return rows, pd.Series(hits, index=rows.index), pd.Series(among, index=rows.index)


def test_an_interval_comes_from_the_defined_resamples_and_counts_the_undefined_ones():
    # a rate over the 3 of 10 questions in a subset: a resample that draws none of them has no rate
    rows, hits, among = _questions(10, [True, False, True] + [False] * 7, [True] * 3 + [False] * 7)
    c = Clusters(rows, RESAMPLES, seed=0)
    m = rate(c, rows, hits, among)
    draws = c.draws(stats.rate_stat(c, rows, hits, among))
    undefined = int(np.isnan(draws).sum())
    assert 0 < undefined < RESAMPLES / 2  # (7/10)^10 ≈ 3% of the resamples miss the subset
    assert m["ci_undefined"] == undefined and m["ci_resamples"] == RESAMPLES
    assert m["ci"] == pytest.approx(np.nanpercentile(draws, [2.5, 97.5]))
    assert m["value"] == pytest.approx(2 / 3) and m["ci"][0] <= m["value"] <= m["ci"][1]
    assert np.isnan(np.percentile(draws, [2.5, 97.5])).all()  # the interval over every resample: none


def test_too_few_defined_resamples_give_no_interval_and_say_why():
    rows, _, _ = _questions(10, [False] * 10, [True] * 10)
    c = Clusters(rows, RESAMPLES, seed=0)
    # defined only when a resample's first draw is one of questions 0..2: in about 30% of them
    m = c.estimate(lambda idx: np.where(idx[:, 0] < 3, 0.5, np.nan), n=10)
    assert m["value"] == 0.5 and np.isnan(m["ci"]).all()
    assert RESAMPLES / 2 < m["ci_undefined"] < RESAMPLES and m["ci_resamples"] == RESAMPLES
    interval = percentile_interval(np.r_[np.full(51, np.nan), np.arange(49.0)])
    assert np.isnan([interval.low, interval.high]).all() and interval.undefined == 51
    assert interval.reason == "no CI: 51 of 100 resamples undefined, fewer than 50% defined"


def test_half_the_resamples_defined_is_enough():
    interval = percentile_interval(np.r_[np.full(50, np.nan), np.arange(50.0)])
    assert (interval.low, interval.high) == pytest.approx(np.percentile(np.arange(50.0), [2.5, 97.5]))
    assert interval.undefined == 50 and interval.resamples == 100 and interval.reason is None
    assert stats.undefined_note(interval.undefined, interval.resamples, True) == "50 of 100 resamples undefined"


def test_a_figure_without_undefined_resamples_keeps_its_keys_and_scipys_interval():
    rng = np.random.default_rng(3)
    rows, hits, among = _questions(40, list(rng.random(40) < 0.4), [True] * 40)
    c = Clusters(rows, 200, seed=5)
    m = rate(c, rows, hits, among)
    assert set(m) == {"value", "ci", "n", "unparsed"}  # no ci_undefined: summaries stay byte-identical
    per_item = hits.to_numpy(dtype=float)
    old = scipy_stats.bootstrap(
        (np.arange(40),),
        lambda idx, axis=-1: per_item[np.atleast_2d(idx)].mean(-1),
        vectorized=True,
        method="percentile",
        n_resamples=200,
        batch=250,
        random_state=np.random.default_rng(5),
    ).confidence_interval
    assert m["ci"] == [float(old.low), float(old.high)]  # exactly what the scipy interval gave before
    assert stats.undefined_note(0, 200, True) == ""
