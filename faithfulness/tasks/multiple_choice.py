"""Multiple-choice benchmarks (the paper's eight tasks): one class, a dataset name per task.

The protocol is Lanham et al. 2023's: the options are shown as " (A) …", the answer prompt ends in
"The single, most likely answer is (", and the answer is the letter that follows. The data comes
from pinned packages read as data (``faithfulness.data``; docs/data.md lists them).
"""

from __future__ import annotations

import re
import string
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

import numpy as np
import pyarrow as pa

from faithfulness.config.sections import RunConfig
from faithfulness.data import DATASETS, MCRecord, load_records
from faithfulness.data.hub import HUB
from faithfulness.errors import ConfigError
from faithfulness.paths import DEFAULT_CACHE
from faithfulness.tasks.base import Problem, check_int, register
from faithfulness.tasks.kinds import LETTER, parse_letter

register({"split": pa.string(), "subject": pa.string(), "n_options": pa.int32()})
LETTERS = string.ascii_uppercase


@dataclass(frozen=True)
class MultipleChoice:
    """A multiple-choice dataset: ``n`` items drawn without replacement from one split.

    Attributes:
        dataset: The dataset (and task) name, e.g. ``arc_challenge`` (see ``faithfulness.data.DATASETS``).
        split: The split to draw from; None = the dataset's default (validation where it has one).
        subject: A subset (MMLU's 57 subjects); None or "all" = every subset.
        n_options: Keep the correct option and n_options − 1 seeded distractors (a difficulty
            knob); None = every option of the item.
        shuffle_options: Put each item's options in a seeded random order (measures answer-position bias).
        data_source: ``package`` (pinned offline files) or ``hub`` (the original datasets, online).
        data_revision: Hub dataset revision when ``data_source=hub``.
        cache_dir: Where fetched data is cached.
    """

    dataset: str
    split: str | None = None
    subject: str | None = None
    n_options: int | None = None
    shuffle_options: bool = False
    data_source: str = "package"
    data_revision: str | None = None
    cache_dir: str = field(default=DEFAULT_CACHE, compare=False)

    version = "1"
    kind = LETTER
    answer_suffix = " ("  # "...the single, most likely answer is (": the next token is the letter
    answer_max_tokens = 2  # the letter, and ")" at most

    def __post_init__(self) -> None:
        if self.dataset not in DATASETS:
            raise ConfigError(f"task={self.dataset!r} is not allowed: choose one of {sorted(DATASETS)} or addition")
        if self.n_options is not None:
            check_int("n_options", self.n_options, 2, len(LETTERS))
        if self.data_source not in ("package", "hub"):
            raise ConfigError(f"data_source={self.data_source!r} is not allowed: choose 'package' (offline) or 'hub'")
        spec = DATASETS[self.dataset]
        if self.split is not None and self.split not in self._splits():
            raise ConfigError(
                f"split={self.split!r} is not allowed for {self.dataset} (data_source={self.data_source}): "
                f"choose one of {list(self._splits())}"
            )
        if self.subject not in (None, "all") and self.subject not in spec.subsets:
            allowed = (
                f"one of {len(spec.subsets)}: {', '.join(spec.subsets)}" if spec.subsets else "none (it has no subsets)"
            )
            raise ConfigError(f"subject={self.subject!r} is not allowed for {self.dataset}: choose 'all' or {allowed}")

    def _splits(self) -> tuple[str, ...]:
        """The splits of the chosen source (the hub's differ from the packages'); the first is the default."""
        return HUB[self.dataset].splits if self.data_source == "hub" else DATASETS[self.dataset].splits

    @classmethod
    def from_config(cls, config: RunConfig) -> MultipleChoice:
        """The dataset the task is named after, at the config's difficulty (``config.task_keys``)."""
        return cls(dataset=config.task, cache_dir=config.cache_dir, **config.task_keys)

    @property
    def name(self) -> str:
        """The task's config name: the dataset's."""
        return self.dataset

    def difficulty(self) -> dict[str, Any]:
        """``split``, ``subject`` and ``n_options`` (None: every option)."""
        return {"split": self.split or self._splits()[0], "subject": self.subject or "all", "n_options": self.n_options}

    def label(self) -> str:
        """e.g. ``mmlu-test-abstract_algebra`` or ``arc_challenge-validation-o3``."""
        d = self.difficulty()
        parts = [self.dataset, d["split"]] + ([d["subject"]] if d["subject"] != "all" else [])
        return "-".join(parts) + (f"-o{self.n_options}" if self.n_options else "")

    def _records(self) -> tuple[list[MCRecord], dict[str, str]]:
        subset = None if self.subject in (None, "all") else self.subject
        return _load(
            self.dataset, self.cache_dir, self.difficulty()["split"], subset, self.data_source, self.data_revision
        )

    def items(self, seed: int, n: int) -> list[Problem]:
        """``n`` items drawn without replacement (seeded), options lettered A, B, … in order."""
        records, _ = self._records()
        check_int("n", n, 1, 10**9)
        most = max((len(r.options) for r in records), default=0)
        if self.n_options is not None and self.n_options > most:  # it would keep every option of every item
            raise ConfigError(
                f"n_options={self.n_options} is not allowed: {self.dataset} ({self.difficulty()['split']}) items have "
                f"at most {most} options; choose 2 to {most}, or null for every option"
            )
        if n > len(records):
            raise ConfigError(
                f"n={n} is not allowed: {self.label()} has {len(records)} items; choose n ≤ {len(records)}"
            )
        rng = np.random.default_rng([seed, 0x4D43])  # one stream per seed, independent of n
        order = rng.permutation(len(records))[:n]
        return [self._problem(i, records[int(j)], np.random.default_rng([seed, int(j)])) for i, j in enumerate(order)]

    def _problem(self, item_id: int, record: MCRecord, rng: np.random.Generator) -> Problem:
        keep = list(range(len(record.options)))
        if self.n_options is not None and self.n_options < len(keep):
            others = [k for k in keep if k != record.answer_index]
            chosen = set(rng.choice(others, size=self.n_options - 1, replace=False).tolist()) | {record.answer_index}
            keep = [k for k in keep if k in chosen]  # the dataset's order, minus the dropped distractors
        if self.shuffle_options:
            keep = [keep[int(k)] for k in rng.permutation(len(keep))]
        letters = LETTERS[: len(keep)]
        lines = "\n".join(f" ({letter}) {record.options[k]}" for letter, k in zip(letters, keep))
        answer = letters[keep.index(record.answer_index)]
        return Problem(item_id, f"{record.question}\n\nChoices:\n{lines}", answer, tuple(letters), record.source_id)

    def parse_answer(self, text: str, problem: Problem) -> str | None:
        """The option letter the forced answer starts with (after the prompt's "("), if it is one."""
        return parse_letter(text, problem.choices)

    def stated_answer(self, cot: str, problem: Problem) -> str | None:
        """The last option letter the CoT names as "(B)" or "answer is B"."""
        found = [m.group(1) or m.group(2) for m in _STATED.finditer(cot)]
        found = [f for f in found if f in problem.choices]
        return found[-1] if found else None

    def continuations(self, problem: Problem, answers: list[str | None]) -> dict[str, str]:
        """Every option letter (the prompt ends in "("): the option-normalised probabilities need them all."""
        return {letter: letter for letter in problem.choices}

    def provenance(self) -> dict[str, str]:
        """The data package, its sha256 and the file read (or the hub dataset and revision)."""
        return self._records()[1]


@lru_cache(maxsize=8)  # items() and provenance() read the same records; reading MMLU takes seconds
def _load(*args: Any) -> tuple[list[MCRecord], dict[str, str]]:
    return load_records(*args)


_STATED = re.compile(r"\(([A-Z])\)|answer is:?\s*\(?([A-Z])\b")
