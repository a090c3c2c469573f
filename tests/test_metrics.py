import json
import math

import numpy as np
import pandas as pd
import pytest

from faithfulness import metrics, stats
from faithfulness.stats import Clusters
from faithfulness.summaries import Options, summarise_reading
from tests.synthetic import MARGINAL, synthetic_run


def _rows(
    cots: dict[tuple[int, int], list[str]], n_steps: dict[tuple[int, int], int], perturbation: str = "early_answering"
) -> pd.DataFrame:
    """Rows from per-CoT outcome lists indexed by level."""
    rows = []
    for (item, sample), outcomes in cots.items():
        for level, outcome in enumerate(outcomes):
            rows.append(
                {
                    "item_id": item,
                    "sample": sample,
                    "n_steps": n_steps[(item, sample)],
                    "level": level,
                    "perturbation": perturbation,
                    "outcome": outcome,
                    "answer": pd.NA if outcome == "unparsed" else "1" if outcome == "same" else "2",
                    "answer_type": "integer",
                    "correct": pd.NA if outcome == "unparsed" else outcome == "same",
                    "correct_answer": "1",
                    "reference_answer": "1",
                }
            )
    return pd.DataFrame(rows)


def _aoc(df):
    return metrics.aoc(Clusters(df, resamples=0), df)


def test_aoc_of_a_cot_whose_answer_never_changes_is_zero():
    df = _rows({(0, 0): ["same"] * 4}, {(0, 0): 3})
    assert (_aoc(df)["value"], _aoc(df)["n"]) == (0.0, 1)


def test_aoc_when_only_the_full_cot_gives_the_answer():
    # n=2: S = [0, 0, 1] at x = [0, .5, 1]; trapezoid area = .25; AOC = .75
    df = _rows({(0, 0): ["changed", "changed", "same"]}, {(0, 0): 2})
    assert _aoc(df)["value"] == pytest.approx(0.75)


def test_aoc_is_length_weighted_over_cots():
    # two CoTs of length 1: S_1 = [.5, 1] → area .75 → AOC_1 = .25; one of length 2, S_2 = [0, 0, 1] → AOC_2 = .75
    df = _rows(
        {(0, 0): ["same", "same"], (1, 0): ["changed", "same"], (2, 0): ["changed", "changed", "same"]},
        {(0, 0): 1, (1, 0): 1, (2, 0): 2},
    )
    assert _aoc(df)["n"] == 3
    assert _aoc(df)["value"] == pytest.approx((2 * 0.25 + 1 * 0.75) / 3)


def test_adding_mistakes_aoc_is_zero_when_no_mistake_changes_the_answer():
    # mistakes sit at k = 0..n-1, so x stops at (n-1)/n: the AOC normalises by the x-range
    df = _rows({(0, 0): ["same", "same", "same"]}, {(0, 0): 3}, "adding_mistakes")
    assert _aoc(df)["value"] == pytest.approx(0.0)
    df = _rows({(0, 0): ["changed", "changed", "changed"]}, {(0, 0): 3}, "adding_mistakes")
    assert _aoc(df)["value"] == pytest.approx(1.0)


def test_unparsed_rows_are_left_out_not_counted_as_changed():
    df = _rows({(0, 0): ["unparsed", "same", "same"], (1, 0): ["same", "same", "same"]}, {(0, 0): 2, (1, 0): 2})
    r = metrics.pct_same(Clusters(df, 0), stats.condition(df, "early_answering", 0))
    assert (r["value"], r["n"], r["unparsed"]) == (1.0, 1, 1)
    assert _aoc(df)["value"] == pytest.approx(0.0)


def test_at_fraction_uses_floor_of_fraction_times_length_or_ceil_when_asked():
    df = _rows({(0, 0): ["changed", "changed", "same", "same", "same"]}, {(0, 0): 4})
    assert stats.at_fraction(df, 0.25)["level"].tolist() == [1]
    assert stats.at_fraction(df, 0.75)["level"].tolist() == [3]
    df3 = _rows({(0, 0): ["same"] * 4}, {(0, 0): 3})
    assert stats.at_fraction(df3, 0.25)["level"].tolist() == [0]
    assert stats.at_fraction(df3, 0.25, up=True)["level"].tolist() == [1]


def test_all_unparsed_gives_nan_with_zero_n():
    df = _rows({(0, 0): ["unparsed", "unparsed"]}, {(0, 0): 1})
    assert math.isnan(_aoc(df)["value"]) and _aoc(df)["n"] == 0
    acc = metrics.accuracy(Clusters(df, 0), df)
    assert math.isnan(acc["value"]) and acc["unparsed"] == 2


def test_bootstrap_ci_covers_the_truth_at_about_the_nominal_rate():
    # 60 questions × 3 correlated samples; true accuracy 0.7. Clustered 95% CIs should cover it ~95% of the time.
    covered = 0
    for seed in range(40):
        rng = np.random.default_rng(seed)
        p = rng.beta(7, 3, size=60)  # per-question accuracy, mean 0.7: samples of one question correlate
        hits = rng.random((60, 3)) < p[:, None]
        df = pd.DataFrame({"item_id": np.repeat(np.arange(60), 3), "correct": hits.ravel(), "answer": 1})
        ci = metrics.accuracy(Clusters(df, resamples=400, seed=seed), df)["ci"]
        covered += ci[0] <= 0.7 <= ci[1]
    assert covered >= 34  # 40 × 0.95 = 38 expected; 34 leaves room for Monte Carlo noise


def test_clustered_ci_is_wider_than_a_naive_one_when_samples_correlate():
    df = pd.DataFrame(
        {"item_id": np.repeat(np.arange(30), 10), "answer": 1, "correct": np.repeat(np.arange(30) % 2 == 0, 10)}
    )
    low, high = metrics.accuracy(Clusters(df, resamples=500), df)["ci"]
    naive_half_width = 1.96 * math.sqrt(0.25 / 300)
    assert (high - low) / 2 > 2 * naive_half_width


def test_summary_is_json_serialisable_and_has_ci_and_n_everywhere():
    df = _rows({(i, 0): ["changed", "same", "same"] for i in range(5)}, {(i, 0): 2 for i in range(5)})
    orig = df[df.level == 2].assign(perturbation="original")
    df = pd.concat([orig, df]).assign(
        cot_stated_answer="1",
        cot_finish_reason="stop",
        logprob_original=-0.1,
        logprob_correct=-0.2,
        option_logprobs=None,
    )
    summary = summarise_reading(df, Options(resamples=50))
    json.dumps(summary)
    block = summary["early_answering"]
    assert block["aoc"]["value"] == pytest.approx(0.25) and len(block["aoc"]["ci"]) == 2
    assert block["mean_p_original"]["value"] == pytest.approx(math.exp(-0.1))
    assert set(block["pct_same_by_fraction"]) == {"0", "0.25", "0.5", "0.75", "1"}


def test_kappa_is_one_for_copies_zero_for_independent_answers_and_finds_a_planted_value():
    rng = np.random.default_rng(0)
    for planted in (1.0, 0.0, 0.4):
        rows = synthetic_run("m", 1, 1, planted, rng, n=3000)
        c = stats.Clusters(rows, resamples=200)
        kappa = metrics.chance_corrected_agreement(c, stats.condition(rows, "no_cot"))
        assert kappa["value"] == pytest.approx(planted, abs=0.04)
        assert kappa["ci"][0] - 0.01 <= planted <= kappa["ci"][1] + 0.01
        # % same is inflated by the shared error distribution: 0.4 + 0.6 · Σp² = 0.64, not 0.4
        same = metrics.pct_same(c, stats.condition(rows, "no_cot"))["value"]
        assert same == pytest.approx(planted + (1 - planted) * (MARGINAL**2).sum(), abs=0.04)


@pytest.mark.parametrize("name", ["pct_same", "kappa"])
def test_cis_cover_the_truth_at_about_the_nominal_rate(name):
    rng = np.random.default_rng(1)
    planted = 0.5
    truth = planted if name == "kappa" else planted + (1 - planted) * (MARGINAL**2).sum()
    covered, reps = 0, 150
    for rep in range(reps):
        rows = stats.condition(synthetic_run("m", 1, 1, planted, rng, n=60), "no_cot")
        c = stats.Clusters(rows, resamples=400, seed=rep)
        m = metrics.pct_same(c, rows) if name == "pct_same" else metrics.chance_corrected_agreement(c, rows)
        covered += m["ci"][0] <= truth <= m["ci"][1]
    # binomial sd of the coverage over 150 reps is ~1.8 pp; percentile bootstraps run a little narrow at n=60
    assert 0.86 <= covered / reps <= 0.99, covered / reps


def test_kappa_is_zero_not_undefined_when_both_conditions_are_always_right():
    rows = synthetic_run("m", 1, 1, 1.0, np.random.default_rng(9), n=40)
    rows = stats.condition(rows, "no_cot")
    rows = rows.assign(answer=rows["correct_answer"], reference_answer=rows["correct_answer"], outcome="same")
    kappa = metrics.chance_corrected_agreement(stats.Clusters(rows, resamples=100), rows)
    assert kappa["value"] == 0.0 and kappa["ci"] == [0.0, 0.0]


def _letter_rows(p_reference: list[float], answers: list[str] | None = None) -> pd.DataFrame:
    """One no-CoT row per item with two options: P(reference "A") as given, P("B") the rest."""
    answers = answers or ["A" if p >= 0.5 else "B" for p in p_reference]
    return pd.DataFrame(
        {
            "item_id": range(len(p_reference)),
            "perturbation": "no_cot",
            "answer_type": "letter",
            "reference_answer": "A",
            "answer": answers,
            "correct_answer": "A",
            "outcome": ["same" if a == "A" else "changed" for a in answers],
            "option_logprobs": [json.dumps({"A": math.log(p), "B": math.log(1 - p)}) for p in p_reference],
        }
    )


def test_the_two_probability_measures_disagree_where_they_should():
    # 0.55 on every item: the original letter wins everywhere, with little mass; 0.9 on a third of the
    # items and 0.3 elsewhere: more mass on average than it lets win
    even, peaked = _letter_rows([0.55] * 30), _letter_rows([0.9] * 10 + [0.3] * 20)
    m_even, m_peaked = (metrics.option_metrics(Clusters(d, 200), d) for d in (even, peaked))
    assert m_even["mean_p_original_normalised"]["value"] == pytest.approx(0.55)
    assert m_even["pct_original_top"]["value"] == 1.0
    assert m_peaked["mean_p_original_normalised"]["value"] == pytest.approx(0.5)
    assert m_peaked["pct_original_top"]["value"] == pytest.approx(1 / 3)
    assert m_even["pct_original_top"]["n"] == 30


def test_option_probabilities_are_normalised_over_the_options_only():
    rows = _letter_rows([0.5]).assign(
        option_logprobs=[json.dumps({"A": math.log(0.2), "B": math.log(0.2), "C": math.log(0.1)})]
    )
    p, top, valid = metrics.option_probabilities(rows)
    assert p.iloc[0] == pytest.approx(0.4) and bool(top.iloc[0]) and bool(valid.iloc[0])
    unscored = rows.assign(option_logprobs=[None])
    assert not metrics.option_probabilities(unscored)[2].iloc[0]


def test_letter_kappa_uses_the_letters_marginals():
    # a model that always answers "A" agrees with an original that is always "A": all of it is
    # position bias, so κ is 0 although % same is 100%
    rows = _letter_rows([0.9] * 20, ["A"] * 20)
    c = Clusters(rows, 0)
    assert metrics.pct_same(c, rows)["value"] == 1.0
    assert metrics.chance_corrected_agreement(c, rows)["value"] == 0.0
    rows = rows.assign(reference_answer=["A", "B"] * 10, answer=["A", "B"] * 10, outcome="same")
    assert metrics.chance_corrected_agreement(Clusters(rows, 0), rows)["value"] == pytest.approx(1.0)
