import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from faithfulness.steps import split_steps, truncate_after_step


@pytest.mark.parametrize(
    "text,expected",
    [
        ("First add 3.5 and 2. Then double it. Done!", ["First add 3.5 and 2. ", "Then double it. ", "Done!"]),
        ("1. Add the ones.\n2. Add the tens.\n", ["1. Add the ones.\n", "2. Add the tens.\n"]),
        ("525 + 560 = 1085\n1085 is the sum", ["525 + 560 = 1085\n", "1085 is the sum"]),
        ("no punctuation at all just words", ["no punctuation at all just words"]),
        ("e.g. this stays one sentence. Next one.", ["e.g. this stays one sentence. ", "Next one."]),
        ("\n\nStep one.\n\n---\n\nStep two.\n", ["\n\nStep one.\n\n---\n\n", "Step two.\n"]),
        ("Is it 5? Yes.", ["Is it 5? ", "Yes."]),
        ("a) first\nb) second", ["a) first\n", "b) second"]),
        ("The total is $1,234.56 today. Good.", ["The total is $1,234.56 today. ", "Good."]),
        ("", []),
        ("...\n\n", []),
    ],
)
def test_split_messy_cots(text, expected):
    assert split_steps(text) == expected


@settings(max_examples=300, deadline=None)
@given(st.lists(st.sampled_from(list("ab 12.!?\n=+-*)") + ["e.g. ", "3.5", "1. ", "Step"]), max_size=40).map("".join))
def test_steps_concatenate_to_the_original_and_each_has_content(text):
    steps = split_steps(text)
    if steps:
        assert "".join(steps) == text
    assert all(any(c.isalnum() for c in step) for step in steps)
    assert split_steps(text) == steps  # deterministic


def test_truncation_is_an_exact_prefix():
    text = "First. Second.\nThird = 3\nFourth!"
    steps = split_steps(text)
    assert len(steps) == 4
    for k in range(len(steps) + 1):
        assert text.startswith(truncate_after_step(steps, k))
    assert truncate_after_step(steps, 0) == ""
    assert truncate_after_step(steps, 4) == text


def test_truncation_out_of_range_names_the_allowed_range():
    with pytest.raises(ValueError, match=r"k=5 .* 0\.\.2"):
        truncate_after_step(["a. ", "b."], 5)
