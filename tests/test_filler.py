import re

import pandas as pd
import pytest

from faithfulness.errors import ConfigError
from faithfulness.filler import (
    accuracy_by_fraction,
    choose_filler,
    longest_per_question,
    question_lengths,
    set_fractions,
    tokens_per_repeat,
)
from faithfulness.loading.hydra import compose
from faithfulness.loading.rules import load
from faithfulness.prompts import PromptRenderer, PromptTemplate
from faithfulness.stats import Clusters

TEMPLATE = PromptTemplate("chat", "Question: {question}", "", "Given all of the above?", "The answer is")


def test_a_real_tokenizer_gets_the_papers_filler(smollm2_tokenizer):
    renderer = PromptRenderer(TEMPLATE, smollm2_tokenizer)
    assert tokens_per_repeat(renderer, "What is 1 + 2?", " ...") == [1, 2, 7, 64]
    assert choose_filler(renderer, "What is 1 + 2?", "auto") == " ..."


def test_a_filler_that_is_not_one_token_per_repeat_is_refused_or_replaced(tiny_tokenizer):
    # the tiny byte-level tokenizer has no merges: " ..." is 4 tokens, "." is one
    renderer = PromptRenderer(TEMPLATE, tiny_tokenizer)
    assert tokens_per_repeat(renderer, "What is 1 + 2?", " ...") == [4, 8, 28, 256]
    assert choose_filler(renderer, "What is 1 + 2?", "auto") == "."
    with pytest.raises(ConfigError, match=r"filler.string=' \.\.\.' is not one token per repeat.*one of \['\.'\]"):
        choose_filler(renderer, "What is 1 + 2?", " ...")


def test_each_question_gets_lengths_up_to_its_own_longest_cot():
    longest = longest_per_question([0, 0, 1], [12, 23, 4])
    assert longest == {0: 23, 1: 4}
    assert question_lengths(23, 5) == [0, 5, 10, 15, 20] and question_lengths(4, 5) == [0]
    rows = [
        {"perturbation": "filler_tokens", "item_id": 0, "level": 10, "fraction": None},
        {"perturbation": "no_cot", "item_id": 0, "level": 0, "fraction": None},
    ]
    set_fractions(rows, longest, ["filler_tokens"])
    assert rows[0]["fraction"] == pytest.approx(10 / 23) and rows[1]["fraction"] is None


def test_accuracy_by_fraction_takes_each_cots_longest_filler_below_the_fraction():
    # question 0 (length 20): m = 0, 5, 10, 15, 20 correct only from m = 10; question 1 (length 10): m = 0, 5, 10 never
    rows = pd.DataFrame(
        [
            {"item_id": 0, "sample": 0, "level": m, "fraction": m / 20, "correct": m >= 10, "answer": "1"}
            for m in range(0, 21, 5)
        ]
        + [
            {"item_id": 1, "sample": 0, "level": m, "fraction": m / 10, "correct": False, "answer": "1"}
            for m in (0, 5, 10)
        ]
    )
    by = accuracy_by_fraction(Clusters(rows, resamples=0), rows)
    assert [by[f]["value"] for f in ("0", "0.25", "0.5", "0.75", "1")] == [0.0, 0.0, 0.5, 0.5, 0.5]
    assert all(by[f]["n"] == 2 for f in by)


@pytest.mark.parametrize(
    "override,needle",
    [
        ("filler.mode=paper", "filler.mode='paper' is not allowed: choose 'per_question' or 'run'"),
        ("filler.step=0", "filler.step=0 is not allowed: must be a whole number ≥ 1"),
    ],
)
def test_bad_filler_settings_are_named(override, needle, tmp_path):
    with pytest.raises(ConfigError, match=re.escape(needle)):
        load(compose([f"results_dir={tmp_path}", override]))
