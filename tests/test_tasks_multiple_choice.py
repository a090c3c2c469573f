from dataclasses import replace

import pytest

from faithfulness.data import MCRecord
from faithfulness.errors import ConfigError
from faithfulness.loading.hydra import compose
from faithfulness.loading.rules import load
from faithfulness.tasks import MultipleChoice, make_task, parse_letter
from faithfulness.tasks import multiple_choice as mc

RECORDS = [MCRecord(f"r{i}", f"Question {i}?", ("red", "green", "blue", "gold"), i % 4) for i in range(12)]


@pytest.fixture(autouse=True)
def fake_records(monkeypatch):
    monkeypatch.setattr(mc, "_load", lambda *args: (RECORDS, {"data_source": "test", "data_sha256": "abc"}))


def test_items_are_seeded_draws_without_replacement_with_lettered_options():
    task = MultipleChoice("arc_easy")
    items = task.items(0, 12)
    assert items == task.items(0, 12) and items != task.items(1, 12)
    assert sorted(p.source_id for p in items) == sorted(r.source_id for r in RECORDS)  # without replacement
    first = items[0]
    record = next(r for r in RECORDS if r.source_id == first.source_id)
    assert first.question == f"{record.question}\n\nChoices:\n (A) red\n (B) green\n (C) blue\n (D) gold"
    assert first.answer == "ABCD"[record.answer_index] and first.choices == ("A", "B", "C", "D")


def test_n_options_keeps_the_correct_option_and_seeded_distractors():
    for problem in MultipleChoice("arc_easy", n_options=2).items(3, 12):
        record = next(r for r in RECORDS if r.source_id == problem.source_id)
        assert problem.choices == ("A", "B")
        shown = [line[5:] for line in problem.question.split("\n")[3:]]
        assert shown[ord(problem.answer) - 65] == record.options[record.answer_index]
        assert [record.options.index(s) for s in shown] == sorted(
            record.options.index(s) for s in shown
        )  # dataset order


def test_shuffled_options_move_the_answer_but_keep_it_right():
    plain, shuffled = (
        MultipleChoice("arc_easy").items(0, 12),
        MultipleChoice("arc_easy", shuffle_options=True).items(0, 12),
    )
    assert [p.answer for p in plain] != [p.answer for p in shuffled]
    for problem in shuffled:
        record = next(r for r in RECORDS if r.source_id == problem.source_id)
        line = problem.question.split("\n")[3 + ord(problem.answer) - 65]
        assert line == f" ({problem.answer}) {record.options[record.answer_index]}"


def test_the_task_interface_of_a_multiple_choice_task():
    task = make_task(replace(load(compose(["task=mmlu", "split=test", "subject=all"])), cache_dir="/c"))
    assert task.name == "mmlu" and task.kind.name == "letter" and task.answer_suffix == " ("
    assert task.difficulty() == {"split": "test", "subject": "all", "n_options": None} and task.label() == "mmlu-test"
    problem = task.items(0, 1)[0]
    assert task.parse_answer("B) green", problem) == "B" and task.parse_answer(" Both", problem) is None
    assert task.continuations(problem, ["A", None]) == {"A": "A", "B": "B", "C": "C", "D": "D"}
    assert task.stated_answer("It is green, (B). So the answer is (C).", problem) == "C"
    assert task.stated_answer("no letter here", problem) is None
    assert task.provenance()["data_sha256"] == "abc"


@pytest.mark.parametrize(
    "text,expected",
    [
        ("A", "A"),
        (" B)", "B"),
        ("(C) blue", "C"),
        ("D.", "D"),
        ("E", None),
        ("a", None),
        ("Both", None),
        ("", None),
        ("I think B", None),
    ],
)
def test_parse_letter_reads_only_an_option_letter_at_the_start(text, expected):
    assert parse_letter(text, ("A", "B", "C", "D")) == expected


@pytest.mark.parametrize(
    "kwargs,needle",
    [
        ({"dataset": "nope"}, "task='nope' is not allowed"),
        ({"dataset": "arc_easy", "split": "train"}, "split='train'"),
        ({"dataset": "mmlu", "subject": "astrology"}, "subject='astrology' is not allowed for mmlu"),
        ({"dataset": "arc_easy", "subject": "x"}, "it has no subsets"),
        ({"dataset": "arc_easy", "n_options": 1}, "n_options=1"),
        ({"dataset": "arc_easy", "data_source": "web"}, "data_source='web'"),
    ],
)
def test_bad_values_are_one_clear_error(kwargs, needle):
    with pytest.raises(ConfigError, match="not allowed") as error:
        MultipleChoice(**kwargs)
    assert needle in str(error.value)


def test_n_larger_than_the_split_names_both():
    with pytest.raises(ConfigError, match="n=13 is not allowed: arc_easy-validation has 12 items"):
        MultipleChoice("arc_easy").items(0, 13)


def test_n_options_above_every_items_count_is_refused_naming_the_most():
    assert len(MultipleChoice("arc_easy", n_options=4).items(0, 3)[0].choices) == 4  # every option: allowed
    with pytest.raises(ConfigError) as error:
        MultipleChoice("arc_easy", n_options=9).items(0, 3)
    assert str(error.value) == (
        "n_options=9 is not allowed: arc_easy (validation) items have at most 4 options; choose 2 to 4, "
        "or null for every option"
    )
