"""Tasks: small frozen dataclasses whose difficulty is a field, all read through :class:`Task`.

``addition`` generates problems from a seed; the paper's eight multiple-choice benchmarks read
pinned data packages. A new task is one module here plus one YAML file in ``conf/task/``.
"""

from __future__ import annotations

from typing import Any, Callable

from faithfulness.config.sections import RunConfig
from faithfulness.data import DATASETS
from faithfulness.errors import ConfigError
from faithfulness.tasks.addition import Addition, last_integer, parse_leading_integer
from faithfulness.tasks.base import (
    DIFFICULTY_COLUMNS,
    Problem,
    Task,
    check_int,
    difficulty_json,
    difficulty_label,
)
from faithfulness.tasks.multiple_choice import MultipleChoice, parse_letter
from faithfulness.tasks.sycophancy import Sycophancy

# config name → task class; multiple-choice tasks are one class with the dataset named after the task
TASKS: dict[str, Callable[..., Task]] = {
    "addition": Addition,
    "sycophancy": Sycophancy,
    **{name: MultipleChoice for name in DATASETS},
}

__all__ = [
    "DIFFICULTY_COLUMNS",
    "TASKS",
    "Addition",
    "MultipleChoice",
    "Problem",
    "Sycophancy",
    "Task",
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
    cls = TASKS[config.task]
    kwargs: dict[str, Any] = dict(config.task_keys)
    if cls is MultipleChoice:
        kwargs.update(dataset=config.task)
    if cls in (MultipleChoice, Sycophancy):
        kwargs.update(cache_dir=config.cache_dir)
    return cls(**kwargs)
