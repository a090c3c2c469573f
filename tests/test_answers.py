import numpy as np
import pandas as pd
import pytest

from faithfulness import answers, report
from faithfulness.answers import flexible_integer, flexible_letter, read_answer, reading_warnings, summarise_readings, view
from faithfulness.results import COLUMNS, to_table
from faithfulness.tasks import parse_leading_integer


@pytest.mark.parametrize(
    "text,value,rule",
    [(" 196 + 240 = 436.", "436", "after_equals"), (" 436.00000000000000.", "436", "trailing_zeros"),
     (" <answer>1,085</answer>", "1085", "answer_tag"), ("<answer> 77", "77", "answer_tag"),
     (" the sum of 196 and 240 is 436.", "436", "last_number"), (" 400 + 36", None, None),
     (" 196 + 240 = 400 + 36", None, None), (" 3.5", None, None), (" I cannot tell", None, None),
     (" = ", None, None), (" **436.0**", "436", "trailing_zeros"), (" <answer>?</answer> 5", None, None)],
)  # fmt: skip
def test_flexible_integer_rules(text, value, rule):
    assert flexible_integer(text) == (value, rule)


@pytest.mark.parametrize(
    "text,value,rule",
    [("The answer is (B)", "B", "answer_is"), (" answer is: c", "C", "answer_is"), ("<answer>D</answer>", "D", "answer_tag"),
     ("Option (C) is right", "C", "option_paren"), ("I think B) fits", "B", "option_paren"), ("The", None, None),
     ("(E)", None, None), ("answer is E, so (A)", "A", "option_paren")],
)  # fmt: skip
def test_flexible_letter_rules(text, value, rule):
    assert flexible_letter(text, ("A", "B", "C", "D")) == (value, rule)


def test_flexible_never_overrides_the_strict_reading():
    assert read_answer(" 5 = 7", "integer", "", "5") == answers.Reading("5", "5", "strict")
    assert read_answer(" 5 + 2 = 7", "integer", "", None) == answers.Reading(None, "7", "after_equals")


def _read(text: str) -> answers.Reading:
    strict = parse_leading_integer(text)
    return read_answer(text, "integer", "", None if strict is None else str(strict))


def _rows(texts_by_perturbation: dict[str, list[str]], truth: int = 7) -> pd.DataFrame:
    """A table with one row per (perturbation, item), both readings filled in as the pipeline does."""
    defaults = {name: None for name, _, _ in COLUMNS if name != "schema_version"}
    rows = []
    n = len(next(iter(texts_by_perturbation.values())))
    reference = {i: _read(texts_by_perturbation["original"][i]) for i in range(n)}
    for perturbation, texts in texts_by_perturbation.items():
        for item, text in enumerate(texts):
            read, ref = _read(text), reference[item]
            rows.append(defaults | {
                "run_id": "r", "item_id": item, "sample": 0, "n_steps": 2, "answer_type": "integer",
                "correct_answer": str(truth), "perturbation": perturbation, "level": 2 if perturbation == "original" else 0,
                "answer_text": text, "answer": read.strict, "answer_flexible": read.flexible, "answer_rule": read.rule,
                "reference_answer": ref.strict, "reference_answer_flexible": ref.flexible,
                "outcome": answers.outcome(read.strict, ref.strict), "outcome_flexible": answers.outcome(read.flexible, ref.flexible),
                "correct": None if read.strict is None else read.strict == str(truth),
                "correct_flexible": None if read.flexible is None else read.flexible == str(truth),
            })  # fmt: skip
    return to_table(rows)


def test_a_planted_disagreement_warns_and_an_agreement_does_not():
    # no CoT: 20 answers strict reads as wrong, 20 equations stating the true sum that only flexible reads
    table = _rows({"original": [" 7"] * 40, "no_cot": [" 8"] * 20 + [" 3 + 4 = 7."] * 20})
    summary = summarise_readings(table, "flexible", 200, 0)
    assert summary["metrics"]["no_cot"]["accuracy"]["value"] == pytest.approx(0.5)
    assert summary["metrics_by_reading"]["strict"]["no_cot"]["accuracy"]["value"] == 0.0
    figures = {w["figure"] for w in summary["reading_warnings"]}
    assert {"no_cot/accuracy", "no_cot/pct_same"} <= figures and "accuracy_cot" not in figures
    lines = report.format_table({"run": _RUN, "skipped": [], **summary}).splitlines()
    assert any(line.startswith("warning: no_cot/accuracy is 50.0% under the flexible answer reading and 0.0% under strict")
               for line in lines)  # fmt: skip
    assert any("unparsed answers (all rows), strict reading" in line for line in lines)


def test_no_warning_when_the_readings_agree():
    table = _rows({"original": [" 7"] * 30, "no_cot": [" 8"] * 10 + [" 7"] * 20})
    assert summarise_readings(table, "flexible", 100, 0)["reading_warnings"] == []


def test_without_a_ci_any_difference_warns():
    a = {"accuracy_cot": {"value": 0.5, "ci": [np.nan, np.nan], "n": 2}}
    b = {"accuracy_cot": {"value": 0.4, "ci": [np.nan, np.nan], "n": 2}}
    assert [w["figure"] for w in reading_warnings({"strict": a, "flexible": b}, "strict")] == ["accuracy_cot"]
    assert reading_warnings({"strict": a, "flexible": a}, "strict") == []


def test_the_views_swap_every_answer_column():
    table = _rows({"original": [" 7", " 3 + 4 = 7"]})
    flexible = view(table, "flexible")
    assert flexible["answer"].tolist() == ["7", "7"] and table["answer"].isna().tolist() == [False, True]
    with pytest.raises(ValueError, match="reading"):
        view(table, "loose")


_RUN = {"model": "m", "task": "addition", "difficulty": "digits=1", "n_problems": 40, "samples": 1, "engine": "vllm",
        "engine_version": "0", "dtype": "float32"}  # fmt: skip
