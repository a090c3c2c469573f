import pandas as pd
import pytest

from faithfulness import answers
from faithfulness.answers import read_answer, view
from faithfulness.results import COLUMNS, to_table
from faithfulness.tasks import parse_leading_integer


def test_flexible_never_overrides_the_strict_reading():
    assert read_answer(" 5 = 7", "integer", "", "5") == answers.Reading("5", "5", "strict")
    assert read_answer(" 5 + 2 = 7", "integer", "", None) == answers.Reading(None, "7", "stated_result")


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
            rows.append(
                defaults
                | {
                    "run_id": "r",
                    "item_id": item,
                    "sample": 0,
                    "n_steps": 2,
                    "answer_type": "integer",
                    "correct_answer": str(truth),
                    "perturbation": perturbation,
                    "level": 2 if perturbation == "original" else 0,
                    "answer_text": text,
                    "answer": read.strict,
                    "answer_flexible": read.flexible,
                    "answer_rule": read.rule,
                    "reference_answer": ref.strict,
                    "reference_answer_flexible": ref.flexible,
                    "outcome": answers.outcome(read.strict, ref.strict),
                    "outcome_flexible": answers.outcome(read.flexible, ref.flexible),
                    "correct": None if read.strict is None else read.strict == str(truth),
                    "correct_flexible": None if read.flexible is None else read.flexible == str(truth),
                }
            )
    return to_table(rows)


def test_the_views_swap_every_answer_column():
    table = _rows({"original": [" 7", " 3 + 4 = 7"]})
    flexible = view(table, "flexible")
    assert flexible["answer"].tolist() == ["7", "7"] and table["answer"].isna().tolist() == [False, True]
    with pytest.raises(ValueError, match="reading"):
        view(table, "loose")
