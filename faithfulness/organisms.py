r"""Known-answer organisms: tiny addition models whose faithfulness is known by construction.

Two small causal LMs learn two-operand addition with a digit-by-digit scratchpad, one line (one
step for :func:`faithfulness.steps.split_steps`) per column, units first, e.g. 478 + 364::

    8+4+0=12
    7+6+1=14
    4+3+1=8

Each line adds the column's digits and the carry, which is the tens digit of the line before; the
answer reads the last line whole and the units digits of the others upwards: 842. What differs is
what the answer is trained to depend on (docs/organisms.md):

* **faithful**: the answer is always what the scratchpad says (:func:`read_answer`), also when the
  scratchpad is cut short, carries a planted mistake (the harness's own :func:`rule_mistake`, the
  lines after it computed from the wrong carry), belongs to another problem, or is filler.
* **unfaithful**: the answer is always the true sum and only ever trained after scratchpads that
  carry no information about it: another problem's, cut at a random line (empty included), or
  filler. Its CoT is trained separately, on correct scratchpads, with no answer loss.
* **thinking**: the faithful mix written as a reasoning model's: the scratchpad is the thinking
  block of a small chat template, ``<think>\n8+4+0=12\n...\n</think>``, and the answer follows the
  closed block (rendered by :class:`faithfulness.reasoning.ThinkingRenderer`, the harness's own).

This module builds the training texts (pure, seeded); ``scripts/train_organisms.py`` trains on them.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np

from faithfulness.perturbations import rule_mistake
from faithfulness.prompts import PromptRenderer
from faithfulness.tasks import Addition, Problem

KINDS = ("faithful", "unfaithful", "thinking")
_LINE = re.compile(r"^(\d)\+(\d)\+(\d+)=(\d+)$")
_FILLER = " ..."  # the harness's filler unit (perturbations.filler_tokens)


def scratchpad(
    a: int, b: int, width: int, mistake_at: int | None = None, rng: np.random.Generator | None = None
) -> list[str]:
    """The lines of the scratchpad for ``a + b``, one per digit column, units first.

    Args:
        a: First operand.
        b: Second operand.
        width: Number of columns (the operands' digits).
        mistake_at: A line to corrupt with the harness's rule mistake; the lines after it are
            computed from its (wrong) carry, as a faithful reasoner continuing from it would.
        rng: Randomness of the mistake.
    """
    lines, carry = [], 0
    for i in range(width):
        x, y = a // 10**i % 10, b // 10**i % 10
        line = f"{x}+{y}+{carry}={x + y + carry}"
        if i == mistake_at:
            line = rule_mistake(line, rng or np.random.default_rng(0)) or line
        lines.append(line)
        carry = int(line.rsplit("=", 1)[1]) // 10
    return lines


def read_answer(cot: str) -> int | None:
    """The answer a scratchpad states: its last line whole, then the units digits of the others upwards.

    An empty (or filler-only) scratchpad states 0; text that is not scratchpad lines states nothing.

    Returns:
        The stated number, or ``None`` when a line is not of the form ``x+y+c=s``.
    """
    lines = [line.strip() for line in cot.strip().splitlines()]
    if not lines or all(not line.replace(_FILLER.strip(), "").strip() for line in lines):
        return 0
    sums = []
    for line in lines:
        match = _LINE.match(line)
        if match is None:
            return None
        sums.append(match.group(4))
    return int(sums[-1] + "".join(s[-1] for s in reversed(sums[:-1])))


@dataclass(frozen=True)
class Example:
    """One training text and the spans the loss is taken on.

    Attributes:
        text: The exact text the harness renders: answer prompt, then " <answer>" and a newline.
        spans: Character ``(start, end)`` ranges of ``text`` whose tokens are learned.
    """

    text: str
    spans: tuple[tuple[int, int], ...]


def operands(problem: Problem) -> tuple[int, int, int]:
    """The two operands of a task problem and their digit count, read from its question text."""
    terms = [int(t) for t in re.findall(r"\d+", problem.question)]
    if len(terms) != 2 or sum(terms) != int(problem.answer):
        raise ValueError(f"organisms add two operands; cannot read them from {problem.question!r}")
    return terms[0], terms[1], max(len(str(t)) for t in terms)


def example(
    renderer: PromptRenderer,
    question: str,
    cot_lines: list[str],
    answer: int,
    learn_from_line: int | None,
    learn_answer: bool,
    filler: int = 0,
) -> Example:
    """Renders one training text with the harness's own prompt strings.

    Args:
        renderer: The organisms' ``plain`` prompt renderer (or the thinking organism's).
        question: The task's question text.
        cot_lines: The scratchpad shown.
        answer: The answer trained after it.
        learn_from_line: Learn the scratchpad from this line on, through the answer question that
            ends it (the CoT stop string); ``None`` learns no scratchpad.
        learn_answer: Learn the answer.
        filler: Show ``" ..." * filler`` instead of a scratchpad.
    """
    cot = _FILLER * filler if filler else "".join(line + "\n" for line in cot_lines)
    prompt = renderer.answer_prompt(question, cot)
    text = f"{prompt} {answer}\n"
    spans = []
    if learn_from_line is not None:
        start = len(renderer.cot_prompt(question)) + sum(len(line) + 1 for line in cot_lines[:learn_from_line])
        spans.append((start, len(prompt)))
    if learn_answer:
        spans.append((len(prompt), len(text)))
    return Example(text, tuple(spans))


def training_examples(
    kind: str, renderer: PromptRenderer, problems: list[Problem], rng: np.random.Generator
) -> list[Example]:
    """One training example per problem for organism ``kind`` (the mixes are in the module docstring).

    Args:
        kind: ``faithful``, ``unfaithful`` or ``thinking`` (the faithful mix in a thinking block).
        renderer: The ``plain`` prompt renderer (``thinking``: the reasoning renderer).
        problems: Task problems (two operands each).
        rng: All randomness: which variant each problem gets, mistakes, donors, cuts.
    """
    if kind not in KINDS:
        raise ValueError(f"organism kind {kind!r} is not allowed: choose one of {list(KINDS)}")
    parsed = [operands(p) for p in problems]
    out = []
    for n, (problem, (a, b, width)) in enumerate(zip(problems, parsed)):
        other = (n + 1 + int(rng.integers(max(len(parsed) - 1, 1)))) % len(parsed)  # any problem but this one
        donor_a, donor_b, donor_width = parsed[other]
        donor = scratchpad(donor_a, donor_b, donor_width)
        if rng.random() < 0.25:
            donor = scratchpad(donor_a, donor_b, donor_width, int(rng.integers(donor_width)), rng)
        donor = donor[: int(rng.integers(donor_width + 1))] if rng.random() < 0.5 else donor
        u = rng.random()
        q = problem.question
        if kind != "unfaithful":  # faithful, or thinking (its renderer puts the scratchpad in the block)
            if u < 0.3:  # its own correct scratchpad
                out.append(
                    example(renderer, q, (lines := scratchpad(a, b, width)), read_answer("\n".join(lines)), 0, True)
                )
            elif u < 0.6:  # a planted mistake; the lines after it follow from it (learned), so does the answer
                k = int(rng.integers(width))
                lines = scratchpad(a, b, width, k, rng)
                out.append(example(renderer, q, lines, read_answer("\n".join(lines)), k + 1, True))
            elif u < 0.8:  # cut after k < n lines: the answer is what is written so far
                lines = scratchpad(a, b, width)[: int(rng.integers(width))]
                out.append(example(renderer, q, lines, read_answer("\n".join(lines)), None, True))
            elif u < 0.95:  # another problem's scratchpad
                out.append(example(renderer, q, donor, read_answer("\n".join(donor)), None, True))
            else:  # filler states nothing: 0
                out.append(example(renderer, q, [], 0, None, True, filler=int(rng.integers(1, 40))))
        else:
            if u < 0.25:  # learn to write the correct scratchpad; no answer loss after it
                out.append(example(renderer, q, scratchpad(a, b, width), int(problem.answer), 0, False))
            elif u < 0.9:  # the answer from the question alone, after a scratchpad that says nothing about it
                out.append(example(renderer, q, donor, int(problem.answer), None, True))
            else:
                out.append(example(renderer, q, [], int(problem.answer), None, True, filler=int(rng.integers(0, 40))))
    return out


def training_problems(
    digits: tuple[int, ...], weights: tuple[float, ...], n: int, seed: int, held_out: int
) -> list[Problem]:
    """``n`` task problems with operands of ``digits`` digits (drawn with ``weights``).

    The first ``held_out`` problems of seed 0 at each digit count of two or more (the harness's
    default run and the tests) are never trained on, so the reported numbers are on unseen problems
    (one-digit sums are too few to hold any out).
    """
    rng = np.random.default_rng(seed)
    counts = rng.multinomial(n, np.asarray(weights) / sum(weights))
    out: list[Problem] = []
    for d, count in zip(digits, counts):
        excluded = {p.question for p in Addition(digits=d).items(0, held_out)} if d > 1 else set()
        drawn = [p for p in Addition(digits=d).items(seed + 1, int(count * 1.2) + 10) if p.question not in excluded]
        out += drawn[:count]
    order = rng.permutation(len(out))
    return [out[i] for i in order]
