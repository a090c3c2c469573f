"""Tasks: small frozen dataclasses whose difficulty is a field, all read through :class:`Task`.

``addition`` generates problems from a seed; the paper's eight multiple-choice benchmarks read
pinned data packages. A new task is one module here plus one YAML file in ``conf/task/``.
"""

from __future__ import annotations

from faithfulness.config.sections import RunConfig
from faithfulness.data import DATASETS
from faithfulness.errors import ConfigError
from faithfulness.tasks.addition import Addition
from faithfulness.tasks.base import (
    DIFFICULTY_COLUMNS,
    AnswerKind,
    Problem,
    Task,
    check_int,
    difficulty_json,
    difficulty_label,
)
from faithfulness.tasks.kinds import ANSWER_KINDS, answer_kind, last_integer, parse_leading_integer, parse_letter
from faithfulness.tasks.multiple_choice import MultipleChoice
from faithfulness.tasks.sycophancy import Sycophancy

# config name → task class; multiple-choice tasks are one class with the dataset named after the task
TASKS: dict[str, type[Task]] = {
    "addition": Addition,
    "sycophancy": Sycophancy,
    **{name: MultipleChoice for name in DATASETS},
}

__all__ = [
    "ANSWER_KINDS",
    "DIFFICULTY_COLUMNS",
    "TASKS",
    "Addition",
    "AnswerKind",
    "MultipleChoice",
    "Problem",
    "Sycophancy",
    "Task",
    "answer_kind",
    "check_int",
    "difficulty_json",
    "difficulty_label",
    "last_integer",
    "make_task",
    "parse_leading_integer",
    "parse_letter",
]


def make_task(config: RunConfig) -> Task:
    """Builds ``config.task`` from the task's own keys (``digits``, ``subject``, …: ``config.task_keys``).

    Raises:
        ConfigError: for an unknown task or a bad difficulty value.
    """
    if config.task not in TASKS:
        raise ConfigError(f"task={config.task!r} is not allowed: choose one of {sorted(TASKS)}")
    return TASKS[config.task].from_config(config)
