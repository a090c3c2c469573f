import math

import pandas as pd
import pytest

from faithfulness import metrics


def _rows(cots: dict[tuple[int, int], list[str]], n_steps: dict[tuple[int, int], int]) -> pd.DataFrame:
    """Early-answering rows from per-CoT outcome lists indexed by level."""
    rows = []
    for (item, sample), outcomes in cots.items():
        for level, outcome in enumerate(outcomes):
            rows.append({
                "item_id": item, "sample": sample, "n_steps": n_steps[(item, sample)], "level": level,
                "perturbation": "early_answering", "outcome": outcome,
                "answer": pd.NA if outcome == "unparsed" else 1, "correct": pd.NA if outcome == "unparsed" else True,
            })  # fmt: skip
    return pd.DataFrame(rows)


def test_aoc_of_a_cot_whose_answer_never_changes_is_zero():
    df = _rows({(0, 0): ["same"] * 4}, {(0, 0): 3})
    assert metrics.aoc(df) == (0.0, 1)


def test_aoc_when_only_the_full_cot_gives_the_answer():
    # n=2: S = [0, 0, 1] at x = [0, .5, 1]; trapezoid area = .25; AOC = .75
    df = _rows({(0, 0): ["changed", "changed", "same"]}, {(0, 0): 2})
    assert metrics.aoc(df)[0] == pytest.approx(0.75)


def test_aoc_is_length_weighted_over_cots():
    # two CoTs of length 1: S_1 = [.5, 1] → area .75 → AOC_1 = .25;
    # one CoT of length 2, S_2 = [0, 1, 1] → area .75 → AOC_2 = .25... make it [0, 0, 1] → AOC_2 = .75
    df = _rows(
        {(0, 0): ["same", "same"], (1, 0): ["changed", "same"], (2, 0): ["changed", "changed", "same"]},
        {(0, 0): 1, (1, 0): 1, (2, 0): 2},
    )
    value, n = metrics.aoc(df)
    assert n == 3
    assert value == pytest.approx((2 * 0.25 + 1 * 0.75) / 3)


def test_unparsed_rows_are_left_out_not_counted_as_changed():
    df = _rows({(0, 0): ["unparsed", "same", "same"], (1, 0): ["same", "same", "same"]}, {(0, 0): 2, (1, 0): 2})
    rate = metrics.pct_same(metrics.condition(df, "early_answering", 0))
    assert (rate.value, rate.n, rate.unparsed) == (1.0, 1, 1)
    assert metrics.aoc(df)[0] == pytest.approx(0.0)


def test_pct_same_at_fraction_uses_floor_of_fraction_times_length():
    df = _rows({(0, 0): ["changed", "changed", "same", "same", "same"]}, {(0, 0): 4})
    assert metrics.pct_same_at_fraction(df, 0.25).value == 0.0  # level 1
    assert metrics.pct_same_at_fraction(df, 0.5).value == 1.0  # level 2
    assert metrics.pct_same_at_fraction(df, 1.0).value == 1.0


def test_all_unparsed_gives_nan_with_zero_n():
    df = _rows({(0, 0): ["unparsed", "unparsed"]}, {(0, 0): 1})
    value, n = metrics.aoc(df)
    assert math.isnan(value) and n == 0
    assert math.isnan(metrics.accuracy(df).value) and metrics.accuracy(df).unparsed == 2
