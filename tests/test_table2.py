import numpy as np
import pandas as pd
import pytest

from faithfulness.stats import percentile_interval
from faithfulness.study import table2
from faithfulness.study.table2 import PAPER_TABLE2


def _task_rows(task: str, p_change: float, rng: np.random.Generator, n: int = 150, model: str = "m") -> list[dict]:
    """Early answering on CoTs of 2 steps: the answer after 0 steps differs with probability p_change,
    so the AOC is p_change / 4; accuracy with CoT 1, without CoT 1 − p_change."""
    rows = []
    for item in range(n):
        changed = rng.random() < p_change
        base = {
            "model": model,
            "task": task,
            "difficulty": "split=validation subject=all n_options=None",
            "seed": 0,
            "item_id": item,
            "sample": 0,
            "n_steps": 2,
            "answer_type": "letter",
            "correct_answer": "A",
            "reference_answer": "A",
        }
        for perturbation, level, answer in (
            ("original", 2, "A"),
            ("early_answering", 0, "B" if changed else "A"),
            ("early_answering", 1, "A"),
            ("early_answering", 2, "A"),
        ):
            rows.append(
                base
                | {
                    "perturbation": perturbation,
                    "level": level,
                    "answer": answer,
                    "correct": answer == "A",
                    "outcome": "same" if answer == "A" else "changed",
                }
            )
    return rows


def _study(order: str, rng: np.random.Generator) -> pd.DataFrame:
    aocs = {task: values[0] for task, values in PAPER_TABLE2.items()}
    if order == "reversed":
        aocs = dict(zip(aocs, sorted(aocs.values())))  # the paper's most faithful task is ours least
    return pd.DataFrame([row for task, aoc in aocs.items() for row in _task_rows(task, 2 * aoc, rng)])


def test_a_study_that_follows_the_paper_correlates_and_one_that_reverses_it_anticorrelates():
    rng = np.random.default_rng(0)
    same = table2.rank_correlation(_study("same", rng), resamples=200).set_index("aoc").loc["early_answering"]
    assert same["spearman"] > 0.9 and same["tasks"] == 8 and same["spearman_low"] > 0.5
    reversed_ = table2.rank_correlation(_study("reversed", rng), resamples=200).set_index("aoc").loc["early_answering"]
    assert reversed_["spearman"] < -0.9 and reversed_["spearman_high"] < -0.5


def test_the_comparison_puts_our_figures_beside_the_papers():
    df = _study("same", np.random.default_rng(1))
    ours = table2.comparison(df, resamples=100).set_index("task")
    assert len(ours) == 8
    aqua = ours.loc["aqua"]
    assert aqua["aoc_early_answering"] == pytest.approx(0.22, abs=0.05)  # planted p = 0.88 → AOC 0.22
    assert aqua["paper_aoc_early_answering"] == 0.44 and aqua["paper_accuracy_cot"] == 0.43
    assert aqua["accuracy_cot"] == 1.0 and aqua["accuracy_no_cot"] == pytest.approx(0.12, abs=0.06)
    assert np.isnan(aqua["aoc_adding_mistakes"])  # no adding-mistakes rows: n/a, never 0
    text = table2.markdown(ours.reset_index(), table2.rank_correlation(df, resamples=50))
    assert "| aqua | 150 | 0.2" in text and "/ 0.44 |" in text and "Spearman ρ" in text


def test_tasks_outside_the_paper_are_ignored():
    df = pd.DataFrame(_task_rows("addition", 0.5, np.random.default_rng(2)))
    assert table2.comparison(df).empty and table2.rank_correlation(df).empty


def _with_one_parsed_question(df: pd.DataFrame, tasks: tuple[str, ...]) -> pd.DataFrame:
    """In ``tasks``, only question 0's early answers are read: a resample that misses it has no AOC there."""
    hidden = df["task"].isin(tasks) & (df["perturbation"] == "early_answering") & (df["item_id"] != 0)
    return df.assign(outcome=df["outcome"].where(~hidden, "unparsed"))


def test_the_spearman_ci_drops_undefined_resamples_and_counts_them_as_every_ci_does(monkeypatch):
    seen = []

    def spy(draws):
        seen.append(np.asarray(draws, dtype=float))
        return percentile_interval(draws)

    monkeypatch.setattr(table2, "percentile_interval", spy)
    df = _with_one_parsed_question(_study("same", np.random.default_rng(3)), ("aqua",))
    table = table2.rank_correlation(df, resamples=200)
    rho, draws = table.set_index("aoc").loc["early_answering"], seen[0]
    undefined = int(np.isnan(draws).sum())
    assert 200 * 0.2 < undefined < 200 * 0.5  # aqua's question 0 is missed by (149/150)^150 ≈ 37% of resamples
    assert rho["spearman_ci_undefined"] == undefined and rho["resamples"] == 200
    assert [rho["spearman_low"], rho["spearman_high"]] == pytest.approx(np.nanpercentile(draws, [2.5, 97.5]))
    text = table2.markdown(table2.comparison(df, resamples=20), table)
    assert f"({undefined} of 200 resamples undefined) over 8 tasks" in text


def test_a_spearman_ci_with_too_few_defined_resamples_is_left_out_and_says_why():
    df = _with_one_parsed_question(_study("same", np.random.default_rng(4)), ("aqua", "logiqa"))
    table = table2.rank_correlation(df, resamples=200)
    row = table.set_index("aoc").loc["early_answering"]
    assert row["spearman"] == row["spearman"]  # ρ itself is defined: every task has its question 0
    assert np.isnan(row["spearman_low"]) and np.isnan(row["spearman_high"])
    assert row["spearman_ci_undefined"] > 100  # defined only when both tasks draw their question: ≈ 40%
    text = table2.markdown(table2.comparison(df, resamples=20), table)
    assert f"n/a (no CI: {row['spearman_ci_undefined']} of 200 resamples undefined, fewer than 50% defined)" in text
