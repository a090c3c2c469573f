from faithfulness.perturbations import Trace, early_answering, original
from faithfulness.steps import split_steps


def _trace(cot: str) -> Trace:
    return Trace(item_id=3, sample=1, seed=9, cot=cot, steps=tuple(split_steps(cot)), finish_reason="stop")


def test_early_answering_gives_every_prefix_from_empty_to_full():
    trace = _trace("Add the ones. Carry the one.\n3 + 4 = 7\nSo 71.")
    perturbed = early_answering(trace)
    assert [p.level for p in perturbed] == [0, 1, 2, 3, 4]
    assert perturbed[0].cot == "" and perturbed[-1].cot == trace.cot
    for p in perturbed:
        assert trace.cot.startswith(p.cot)
        assert p.perturbation == "early_answering"
    assert len({p.cot for p in perturbed}) == 5  # each level shows strictly more


def test_a_cot_without_steps_still_gets_its_no_cot_level():
    assert [p.level for p in early_answering(_trace(""))] == [0]


def test_original_is_the_full_cot_at_level_n():
    trace = _trace("One. Two.")
    assert original(trace)[0].cot == trace.cot and original(trace)[0].level == 2
