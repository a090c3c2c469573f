"""The answer kinds: flexible readings, κ codes, bias-target scores, hint targets (faithfulness/tasks/kinds.py)."""

import json
import re

import numpy as np
import pandas as pd
import pytest

from faithfulness.metrics import answer_codes
from faithfulness.tasks import ANSWER_KINDS, Problem, answer_kind
from faithfulness.tasks.kinds import INTEGER, LETTER, flexible_integer, flexible_letter

SUM = Problem(1, "What is 421 + 421?", "842")
OPTIONS = Problem(0, "Q", "B", ("A", "B", "C"))


@pytest.mark.parametrize(
    "text,value,rule",
    [
        (" 196 + 240 = 436.", "436", "stated_result"),
        (" 436.00000000000000.", "436", "trailing_zeros"),
        (" <answer>1,085</answer>", "1085", "answer_tag"),
        ("<answer> 77", "77", "answer_tag"),
        (" the sum of 196 and 240 is 436.", "436", "stated_result"),
        (" Sum: 436 (approx)", "436", "last_number"),
        (" 400 + 36", None, None),
        (" 196 + 240 = 400 + 36", None, None),
        (" 3.5", None, None),
        (" I cannot tell", None, None),
        (" = ", None, None),
        (" **436.0**", "436", "trailing_zeros"),
        (" <answer>?</answer> 5", None, None),
    ],
)
def test_flexible_integer_rules(text, value, rule):
    assert flexible_integer(text) == (value, rule)


@pytest.mark.parametrize(
    "text,value,rule",
    [
        ("The answer is (B)", "B", "answer_is"),
        (" answer is: c", "C", "answer_is"),
        ("<answer>D</answer>", "D", "answer_tag"),
        ("Option (C) is right", "C", "option_paren"),
        ("I think B) fits", "B", "option_paren"),
        ("The", None, None),
        ("(E)", None, None),
        ("answer is E, so (A)", "A", "option_paren"),
    ],
)
def test_flexible_letter_rules(text, value, rule):
    assert flexible_letter(text, ("A", "B", "C", "D")) == (value, rule)


@pytest.mark.parametrize(
    "text,value",
    [
        (" 954 + 164, which is 229.", "229"),
        (" the sum equals 1,085", "1085"),
        (" 152 + 847 = 152 + 847 = 152", None),
        (" 196 + 240 = 400 + 36 = 436.", "436"),
        (' "The answer to the question "What is 911 + 609?"', None),
        (" This is 12.", "12"),
    ],
)
def test_a_stated_result_follows_the_last_marker_of_the_first_line(text, value):
    assert flexible_integer(text)[0] == value


@pytest.mark.parametrize("seed", range(20))
def test_wrong_answers_are_wrong_seeded_and_plausible(seed):
    assert LETTER.wrong_answer(OPTIONS, np.random.default_rng(seed)) in ("A", "C")
    wrong = int(INTEGER.wrong_answer(SUM, np.random.default_rng(seed)))
    assert wrong != 842 and wrong >= 0 and abs(wrong - 842) in (1, 10, 100)
    assert INTEGER.wrong_answer(SUM, np.random.default_rng(seed)) == str(wrong)


def test_integers_are_coded_by_their_error_and_letters_by_themselves():
    rows = pd.DataFrame(
        {
            "answer_type": "integer",
            "correct_answer": ["10", "20"],
            "reference_answer": ["11", "20"],
            "answer": ["9", "21"],
        }
    )
    assert answer_codes(rows).tolist() == [[1, 0], [-1, 1]]
    letters = rows.assign(answer_type="letter", reference_answer=["A", "B"], answer=["A", "C"])
    assert answer_codes(letters).tolist() == [["A", "B"], ["A", "C"]]
    with pytest.raises(ValueError, match="compute it per task"):
        answer_codes(pd.concat([rows, letters]))


def test_a_target_is_scored_as_its_kind_scores_it():
    row = pd.DataFrame(
        {
            "correct_answer": ["842"],
            "target_answer": ["843"],
            "logprob_original": [-0.5],
            "logprob_correct": [-0.5],
            "logprob_target": [-2.0],
            "option_logprobs": [json.dumps({"A": -2.0, "B": -0.1, "C": -2.0})],
        }
    )
    r = next(row.itertuples())
    p, wins = INTEGER.target_share(r, "843")
    assert p == pytest.approx(np.exp(-2.0)) and not wins
    assert INTEGER.target_share(r, "999") is None  # never scored
    p, wins = LETTER.target_share(r, "B")
    assert p == pytest.approx(np.exp(-0.1) / (np.exp(-0.1) + 2 * np.exp(-2.0))) and wins
    assert LETTER.target_share(r, "D") is None


def test_a_cot_names_a_sum_bare_but_a_letter_only_in_parentheses():
    assert re.search(INTEGER.named("852"), "the sum might be 852.") and not re.search(INTEGER.named("85"), "852")
    assert re.search(LETTER.named("A"), "it is (A)") and not re.search(LETTER.named("A"), "A whale is a mammal")


def test_every_kind_is_found_by_its_name_and_an_unknown_name_is_refused():
    assert all(answer_kind(name) is kind and kind.name == name for name, kind in ANSWER_KINDS.items())
    with pytest.raises(ValueError, match="'word' is not one of"):
        answer_kind("word")
