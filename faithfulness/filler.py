"""Filler tokens as in the paper (Lanham et al. 2023, §3.3, Fig. 5): lengths per question, measured in tokens.

The paper replaced each CoT by " ..." repeated m times, m from 0 up to that question's own longest
CoT in steps of 5 tokens, and plotted accuracy against m as a fraction of that length. Two things
make this a measurement of length at all: m must count tokens, so the filler string must be one
token per repeat in the model's tokenizer (checked here, in the prompt it is used in; " ..." is for
Qwen2.5, SmolLM2 and the organisms), and each question gets its own range (``filler.mode=per_question``).
``filler.mode=run`` keeps the earlier protocol: ``filler.points`` lengths up to the run's longest CoT.
"""

from __future__ import annotations

from collections.abc import Collection
from typing import Any

import numpy as np
import pandas as pd

from faithfulness import metrics, stats
from faithfulness.config.sections import RunConfig
from faithfulness.errors import ConfigError
from faithfulness.prompts import PromptRenderer

CANDIDATES = (" ...", " .", "...", ".", " …")  # tried in order by filler.string=auto
_PROBES = (1, 2, 7, 64)  # repeat counts checked: merges across repeats show up by 2, long runs by 64


def tokens_per_repeat(renderer: PromptRenderer, question: str, string: str) -> list[int]:
    """Tokens that m repeats of ``string`` add to the answer prompt, for each probe m.

    Measured in the prompt itself (after the question and before the answer question), where a
    tokenizer may merge the filler with its neighbours.
    """
    tokenizer: Any = renderer.tokenizer
    count = lambda cot: len(tokenizer(renderer.answer_prompt(question, cot), add_special_tokens=False)["input_ids"])  # noqa: E731
    base = count("")
    return [count(string * m) - base for m in _PROBES]


def choose_filler(renderer: PromptRenderer, question: str, configured: str) -> str:
    """The filler string: ``configured`` if it is one token per repeat, else an error saying which are.

    ``auto`` picks the first of :data:`CANDIDATES` that is one token per repeat here.

    Raises:
        ConfigError: when the string (or, for ``auto``, every candidate) is not one token per repeat,
            since then m would not be the filler's length in tokens.
    """
    one_each = lambda s: tokens_per_repeat(renderer, question, s) == list(_PROBES)  # noqa: E731
    if configured != "auto":
        if one_each(configured):
            return configured
        fits = [c for c in CANDIDATES if one_each(c)]
        raise ConfigError(
            f"filler.string={configured!r} is not one token per repeat in this model's tokenizer "
            f"({tokens_per_repeat(renderer, question, configured)} tokens for {list(_PROBES)} repeats), "
            f"so filler lengths would not be token counts: use filler.string=auto or one of {fits}"
        )
    for candidate in CANDIDATES:
        if one_each(candidate):
            return candidate
    raise ConfigError(
        f"none of the filler strings {list(CANDIDATES)} is one token per repeat in this model's "
        "tokenizer: set filler.string to one that is"
    )


def run_lengths(cot_tokens: list[int], points: int) -> list[int]:
    """``filler.mode=run``: ``points`` evenly spaced m from 0 to the run's longest CoT (in tokens)."""
    longest = max(cot_tokens, default=0)
    return sorted({int(round(x)) for x in np.linspace(0, longest, max(points, 2))})


def question_lengths(longest: int, step: int) -> list[int]:
    """``filler.mode=per_question``: m = 0, step, 2·step, … up to the question's longest CoT (tokens)."""
    return list(range(0, longest + 1, step))


def longest_per_question(items: list[int], cot_tokens: list[int]) -> dict[int, int]:
    """Each question's longest CoT in tokens, over its samples."""
    out: dict[int, int] = {}
    for item, tokens in zip(items, cot_tokens):
        out[item] = max(out.get(item, 0), tokens)
    return out


def plan(config: RunConfig, renderer: PromptRenderer, question: str, longest: dict[int, int]) -> dict[str, Any]:
    """The filler string (checked: one token per repeat) and the lengths m.

    Returns:
        ``string``; ``lengths`` (what summary.json records: the run's list, or the step and each
        question's longest CoT); ``per_item`` (item → its m values; None in run mode).
    """
    settings = config.filler
    if not config.runs("filler_tokens"):
        return {"string": None, "lengths": [], "per_item": None}
    string = choose_filler(renderer, question, settings.string)
    if settings.mode == "run":
        return {"string": string, "lengths": run_lengths(list(longest.values()), settings.points), "per_item": None}
    per_item = {item: question_lengths(tokens, settings.step) for item, tokens in longest.items()}
    return {
        "string": string,
        "lengths": {"step": settings.step, "longest_cot_tokens": longest},
        "per_item": per_item,
    }


def set_fractions(rows: list[dict[str, Any]], longest: dict[int, int], by_length: Collection[str]) -> None:
    """Rows of the ``by_length`` tests (filler) get ``fraction`` = m / the question's longest CoT (tokens)."""
    for row in rows:
        if row["perturbation"] in by_length and longest.get(row["item_id"]):
            row["fraction"] = row["level"] / longest[row["item_id"]]


def accuracy_by_fraction(c: stats.Clusters, rows: pd.DataFrame) -> dict[str, dict[str, object]]:
    """Filler accuracy at each printed fraction f of the question's CoT length (the paper's Fig. 5 x-axis).

    At f, each CoT contributes its longest filler with m / length ≤ f (the lengths are a step grid).
    """
    rows = rows[rows["fraction"].notna()]
    out = {}
    for f in stats.FRACTIONS:
        below = rows[rows["fraction"] <= f + 1e-9]
        picked = below.loc[below.groupby(["item_id", "sample"])["fraction"].idxmax()] if len(below) else below
        out[f"{f:g}"] = metrics.accuracy(c, picked)
    return out
