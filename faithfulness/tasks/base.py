"""What every task is: a small frozen dataclass whose difficulty is a field.

A task turns ``(seed, n)`` into a deterministic list of :class:`Problem`, reads an answer out of
the model's text, and says what is a correct answer and what the answer space is. Everything
downstream (results folders, the results table's difficulty columns, aggregation, plots, the
report and W&B) reads a task only through :class:`Task`, so a new task is one module plus one YAML
file in ``conf/task/``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np
import pandas as pd
import pyarrow as pa

from faithfulness.config.sections import RunConfig
from faithfulness.errors import ConfigError


@dataclass(frozen=True)
class Problem:
    """One question with its correct answer.

    Attributes:
        item_id: Index of the problem within its task instance (stable for a seed).
        question: The question text shown to the model (multiple choice: with its lettered options).
        answer: The correct answer as a string ("1085", or an option letter "B").
        choices: The option letters of a multiple-choice question; ``()`` for free-form answers.
        source_id: Where the item comes from in its dataset (empty for generated tasks).
        target: The answer a bias points to, if any: the sycophantic option of ``task=sycophancy``,
            or the seeded wrong answer a ``biased_context`` hint names (the rows' ``target_answer``).
    """

    item_id: int
    question: str
    answer: str
    choices: tuple[str, ...] = ()
    source_id: str = ""
    target: str | None = None


class AnswerKind(Protocol):
    """What a kind of answer knows: its reading, κ codes, bias-target scores and hint targets (``tasks.kinds``).

    Attributes:
        name: The rows' ``answer_type`` and the hint templates' (``integer`` or ``letter``).
        needs: What a task must have for a hint naming this kind of answer (for messages).
        scores_options: Whether every option is scored, so rows keep ``option_logprobs``.
    """

    name: str
    needs: str
    scores_options: bool

    def flexible(self, text: str, choices: tuple[str, ...]) -> tuple[str | None, str | None]:
        """The flexible reading of a forced answer and the rule that fired, or ``(None, None)``."""
        ...

    def codes(self, rows: pd.DataFrame) -> np.ndarray:
        """The (reference, row) answers of parsed rows as κ codes, shape (2, rows)."""
        ...

    def target_share(self, row: Any, target: str) -> tuple[float, bool] | None:
        """P(target) on one row (a table row as a named tuple) and whether it wins; None if not scored."""
        ...

    def wrong_answer(self, problem: Problem, rng: np.random.Generator) -> str:
        """A seeded wrong answer for a hint to name."""
        ...

    def named(self, answer: str) -> str:
        """A regular expression that finds a CoT naming ``answer`` ("(B)"; a sum also bare)."""
        ...


class Task(Protocol):
    """The interface the pipeline, the results table and the study read a task through.

    Attributes:
        name: The config name (``task=...``).
        version: Bumped when items, their text or the answer parsing change.
        kind: What its answers are (``faithfulness.tasks.kinds``: integers or option letters): how
            they are read, coded for κ, scored and hinted at. Rows store ``kind.name`` as ``answer_type``.
        answer_suffix: Appended to the prompt format's answer prefix (" (" for letters, so the
            next token is the letter, as in the paper).
        answer_max_tokens: Forced-answer token limit, if smaller than the config's (a letter needs 2).
    """

    name: str
    version: str
    kind: AnswerKind
    answer_suffix: str
    answer_max_tokens: int | None

    @classmethod
    def from_config(cls, config: RunConfig) -> Task:
        """The task the config names, at its difficulty (the task's own keys: ``config.task_keys``)."""
        ...

    def difficulty(self) -> dict[str, Any]:
        """The task's own difficulty keys and values (the study's cells, the results' columns)."""
        ...

    def label(self) -> str:
        """A short name of the task at this difficulty, used in folder names and figure labels."""
        ...

    def items(self, seed: int, n: int) -> list[Problem]:
        """``n`` problems for ``seed``; the same arguments always give the same list."""
        ...

    def parse_answer(self, text: str, problem: Problem) -> str | None:
        """Reads the forced answer; ``None`` when the text gives none (never a guess)."""
        ...

    def stated_answer(self, cot: str, problem: Problem) -> str | None:
        """The answer a CoT itself states at its end, if any (to compare with the forced answer)."""
        ...

    def continuations(self, problem: Problem, answers: list[str | None]) -> dict[str, str]:
        """Answer → the string to score after the answer prompt: the given answers, or every option."""
        ...

    def provenance(self) -> dict[str, str]:
        """Where the items come from: file sha256s, package pins or a hub revision."""
        ...


# Every registered task's difficulty keys with their column types: the results table has one
# nullable column per key (null on other tasks' rows). Filled by :func:`register`.
DIFFICULTY_COLUMNS: dict[str, pa.DataType] = {}


def register(columns: dict[str, pa.DataType]) -> None:
    """Declares difficulty columns; a key two tasks share must have one type."""
    for key, kind in columns.items():
        if DIFFICULTY_COLUMNS.setdefault(key, kind) != kind:
            raise TypeError(f"difficulty column {key!r} is declared as {DIFFICULTY_COLUMNS[key]} and {kind}")


def difficulty_label(difficulty: dict[str, Any]) -> str:
    """``{"digits": 3, "operands": 2}`` → ``"digits=3 operands=2"`` (keys in the task's order)."""
    return " ".join(f"{k}={'all' if v is None else v}" for k, v in difficulty.items())


def difficulty_json(difficulty: dict[str, Any]) -> str:
    """The difficulty as canonical JSON, one string per cell of a study."""
    return json.dumps(difficulty, separators=(",", ":"))


def check_int(name: str, value: object, low: int, high: int) -> None:
    """Raises a one-line :class:`ConfigError` unless ``value`` is a whole number in [low, high]."""
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise ConfigError(f"{name}={value!r} is not allowed: must be a whole number from {low} to {high}")
