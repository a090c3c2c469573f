import re

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from faithfulness.perturbations import (
    Perturbed,
    Rewrite,
    Skipped,
    Trace,
    apply_rewrite,
    original,
    rule_mistake,
    with_continuation,
)
from faithfulness.steps import split_steps
from faithfulness.suite.adding_mistakes import adding_mistakes
from faithfulness.suite.early_answering import early_answering
from faithfulness.suite.filler_tokens import filler_tokens
from faithfulness.suite.no_cot import no_cot
from faithfulness.suite.paraphrasing import paraphrasing

COT = "Add the ones: 5 + 7 = 12. Write 2, carry 1.\nAdd the tens: 2 + 3 + 1 = 6.\nSo the answer is 62."


def _trace(cot: str = COT) -> Trace:
    return Trace(item_id=3, sample=1, seed=9, cot=cot, steps=tuple(split_steps(cot)), finish_reason="stop")


def test_early_answering_gives_every_prefix_from_empty_to_full():
    trace = _trace()
    perturbed = early_answering(trace)
    assert [p.level for p in perturbed] == list(range(len(trace.steps) + 1))
    assert perturbed[0].cot == "" and perturbed[-1].cot == trace.cot
    assert all(trace.cot.startswith(p.cot) for p in perturbed)
    assert len({p.cot for p in perturbed}) == len(perturbed)  # each level shows strictly more


def test_a_cot_without_steps_still_gets_its_no_cot_level():
    assert [p.level for p in early_answering(_trace(""))] == [0]


def test_original_and_no_cot():
    trace = _trace()
    assert original(trace) == [Perturbed("original", 4, trace.cot)]
    assert no_cot(trace) == [Perturbed("no_cot", 0, "")]


def test_filler_repeats_the_unit_m_times():
    perturbed = filler_tokens(_trace(), [0, 3, 10])
    assert [p.cot for p in perturbed] == ["", " ..." * 3, " ..." * 10]
    assert all(p.cot.count(" ...") == p.level for p in perturbed)


def test_filler_has_the_requested_length_in_tokens_for_a_real_tokenizer(smollm2_tokenizer):
    for p in filler_tokens(_trace(), [1, 7, 64]):
        assert len(smollm2_tokenizer(p.cot, add_special_tokens=False)["input_ids"]) == p.level


@settings(max_examples=200, deadline=None)
@given(st.lists(st.integers(0, 10**6), min_size=1, max_size=4), st.integers(0, 2**32 - 1))
def test_a_rule_mistake_changes_exactly_one_number_and_makes_it_wrong(numbers, seed):
    step = "We compute " + " + ".join(map(str, numbers[:-1] or [1])) + f" = {numbers[-1]}, then go on."
    wrong = rule_mistake(step, np.random.default_rng(seed))
    before, after = re.findall(r"\d+", step), re.findall(r"\d+", wrong)
    assert len(before) == len(after)
    changed = [(a, b) for a, b in zip(before, after) if a != b]
    assert len(changed) == 1
    a, b = changed[0]
    assert len(a) == len(b) and sum(x != y for x, y in zip(a, b)) == 1 and not (len(b) > 1 and b[0] == "0")
    assert re.sub(r"\d+", "#", step) == re.sub(r"\d+", "#", wrong)  # nothing but the digit moved


def test_rule_mistake_prefers_results_of_computations_and_skips_steps_without_numbers():
    rng = np.random.default_rng(0)
    for _ in range(20):
        wrong = rule_mistake("5 + 7 = 12.", rng)
        assert wrong.startswith("5 + 7 = ") and wrong != "5 + 7 = 12."
    assert rule_mistake("No numbers here.", rng) is None
    assert rule_mistake("1. Align the digits.", rng) is None  # a list marker is not a number of the reasoning
    assert rule_mistake("Step 2: Add the tens.", rng) is None
    assert all(rule_mistake("2. Add 3 and 4.", np.random.default_rng(s)).startswith("2. Add ") for s in range(20))


def test_adding_mistakes_corrupts_one_step_and_keeps_the_prefix_byte_for_byte():
    trace = _trace()
    items = adding_mistakes(trace, np.random.default_rng(1), "rule")
    assert [p.level for p in items] == [0, 1, 2, 3]  # every step of COT has a number
    for p in items:
        before = "".join(trace.steps[: p.level])
        assert p.cot == before + p.edited and p.replaced == trace.steps[p.level] and p.edited != p.replaced
        assert p.regenerate
    again = adding_mistakes(trace, np.random.default_rng(1), "rule")
    assert items == again  # deterministic for a seed


def test_steps_without_a_number_are_skipped_and_say_why():
    trace = _trace("First we think.\nThen 2 + 3 = 5.")
    items = adding_mistakes(trace, np.random.default_rng(0), "rule")
    assert isinstance(items[0], Skipped) and items[0].reason == "no number in the step" and items[0].level == 0
    assert isinstance(items[1], Perturbed) and items[1].level == 1


def test_model_written_mistakes_and_paraphrases_are_requests_not_model_calls():
    trace = _trace()
    mistakes = adding_mistakes(trace, np.random.default_rng(0), "model")
    assert all(isinstance(r, Rewrite) and r.kind == "mistake" for r in mistakes)
    paraphrases = paraphrasing(trace)
    assert [r.level for r in paraphrases] == [1, 2, 3, 4]
    assert paraphrases[-1].text == trace.cot and paraphrases[0].before == ""


def test_apply_rewrite_keeps_whitespace_and_refuses_identical_rewrites():
    rewrite = Rewrite("adding_mistakes", 1, "mistake", "First. ", "Then 2 + 2 = 4.\n")
    done = apply_rewrite(rewrite, ' "Then 2 + 2 = 5."')
    assert done.cot == "First. Then 2 + 2 = 5.\n" and done.edited == "Then 2 + 2 = 5.\n"
    assert isinstance(apply_rewrite(rewrite, "Then 2 + 2 = 4."), Skipped)
    assert isinstance(apply_rewrite(rewrite, "   "), Skipped)


def test_regeneration_keeps_the_untouched_prefix_byte_for_byte():
    prefix = Perturbed("paraphrasing", 2, "Reworded. Text.\n", True, "a", "b")
    done = with_continuation(prefix, "And the rest.")
    assert done.cot.startswith(prefix.cot) and done.cot == prefix.cot + "And the rest." and not done.regenerate


def _numbered_trace(n_steps: int):
    steps = tuple(f"Step {i} gives {i + 10}.\n" for i in range(n_steps))
    return Trace(0, 0, 0, "".join(steps), steps, "stop")


@pytest.mark.parametrize("n_steps", [1, 3, 4, 13, 40])
def test_cut_points_measure_exactly_the_printed_fractions(n_steps):
    from faithfulness.stats import FRACTIONS

    trace, rng = _numbered_trace(n_steps), np.random.default_rng(0)
    early = [p.level for p in early_answering(trace, points=5)]
    assert early == sorted({int(np.floor(f * n_steps + 1e-9)) for f in FRACTIONS})
    mistakes = [p.level for p in adding_mistakes(trace, rng, "rule", points=5)]
    assert mistakes == sorted({int(np.floor(f * n_steps + 1e-9)) for f in FRACTIONS[:-1]})
    paraphrased = [r.level for r in paraphrasing(trace, points=5)]
    assert paraphrased == sorted({int(np.ceil(f * n_steps - 1e-9)) for f in FRACTIONS[1:]})
    assert [p.level for p in early_answering(trace)] == list(range(n_steps + 1))  # None: every step
    assert early_answering(trace, points=1000) == early_answering(trace)
