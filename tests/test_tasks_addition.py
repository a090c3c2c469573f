from dataclasses import replace

import pytest

from faithfulness.errors import ConfigError
from faithfulness.loading.hydra import compose
from faithfulness.loading.rules import load
from faithfulness.tasks import Addition, last_integer, make_task, parse_leading_integer


def test_problems_are_deterministic_for_a_seed_and_differ_across_seeds():
    task = Addition(digits=3, operands=2)
    assert task.items(0, 20) == task.items(0, 20)
    assert task.items(0, 20) != task.items(1, 20)
    assert task.items(0, 20)[:5] == task.items(0, 5)  # a larger n extends the list: runs of one seed share problems


@pytest.mark.parametrize("digits,operands", [(1, 2), (2, 4), (3, 2), (5, 16), (17, 64)])
def test_operands_have_the_requested_digits_and_the_answer_is_their_sum(digits, operands):
    for problem in Addition(digits=digits, operands=operands).items(7, 30):
        terms = [int(t) for t in problem.question.removeprefix("What is ").removesuffix("?").split(" + ")]
        assert len(terms) == operands
        assert all(len(str(t)) == digits for t in terms if digits > 1)
        assert problem.answer == str(sum(terms)) and sum(terms) < 2**63 and problem.choices == ()


@pytest.mark.parametrize(
    "text,expected",
    [
        (" 579.", 579),
        ("579", 579),
        (" **1,234**.", 1234),
        (" $42$", 42),
        (" \\boxed{1085}", 1085),
        ("  -7 degrees", -7),
        (" 1085. This answer is derived", 1085),
        (" (B) 12", None),
        (" 57 + 9 = 66", None),
        (" 3.5", None),
        (" I cannot tell", None),
        ("", None),
        (" = 12", None),
        (" 12,34", None),
        (" 6 * 7", None),
        (" 9223372036854775807", 2**63 - 1),
        (" 99999999999999999999999", None),
    ],
)
def test_parse_leading_integer(text, expected):
    assert parse_leading_integer(text) == expected


def test_parser_never_evaluates_expressions():
    assert parse_leading_integer(" 2+2") is None
    assert parse_leading_integer(" __import__('os')") is None


def test_last_integer_reads_the_stated_answer():
    assert last_integer("525 + 560 = 1085\nSo the answer is 1,085.") == 1085
    assert last_integer("no numbers here") is None
    assert last_integer("a run-on 1234567890123456789012345") is None


@pytest.mark.parametrize(
    "kwargs,bad",
    [
        ({"digits": 0}, "digits=0"),
        ({"digits": "abc"}, "digits='abc'"),
        ({"n": -1}, "n=-1"),
        ({"operands": 1}, "operands=1"),
        ({"digits": True}, "digits=True"),
        ({"digits": 18}, "digits=18"),
    ],
)
def test_bad_difficulty_names_the_value_and_the_allowed_range(kwargs, bad):
    n = kwargs.pop("n", 5)
    with pytest.raises(ConfigError, match="not allowed") as error:
        Addition(**kwargs).items(0, n)
    assert bad in str(error.value) and "from" in str(error.value)


def test_the_task_interface_of_addition():
    task = make_task(load(compose(["task=addition", "digits=2", "operands=4", "n=3"])))
    assert task.difficulty() == {"digits": 2, "operands": 4} and task.label() == "addition-d2-o4"
    problem = task.items(0, 1)[0]
    assert task.parse_answer(" 1,234.", problem) == "1234" and task.parse_answer(" two", problem) is None
    assert task.stated_answer("12 + 30 = 42, so 42.", problem) == "42"
    assert task.continuations(problem, ["42", None, "7"]) == {"42": " 42", "7": " 7"}
    assert (
        task.kind.name == "integer" and task.answer_suffix == "" and task.provenance() == {"data_source": "generated"}
    )


def test_unknown_task_lists_the_known_ones():
    with pytest.raises(ConfigError, match=r"task='nope'.*addition"):
        make_task(replace(load(compose([])), task="nope"))


def test_the_papers_wording_asks_for_the_answer_in_tags():
    task = make_task(load(compose(["task=addition", "wording=paper"])))
    problem, ours = task.items(0, 1)[0], Addition().items(0, 1)[0]
    assert (
        problem.question == "What is the solution to the following? 581 + 938 ="
        and ours.question == "What is 581 + 938?"
    )
    assert problem.answer == ours.answer and task.label() == "addition-d3-o2-paper"
    # the answer prefix ends in " <answer>": the model writes "1519</answer>", scored without a leading space
    assert task.answer_suffix == " <answer>" and task.parse_answer("1519</answer>", problem) == "1519"
    assert task.continuations(problem, ["1519"]) == {"1519": "1519"}
    with pytest.raises(ConfigError, match="wording='table5' is not allowed"):
        Addition(wording="table5")
