"""Engines: one protocol, one module per backend.

Only ``faithfulness/engines/vllm_engine.py`` imports vLLM, so version churn stays in one file. The
pipeline hands an engine every request of a stage at once and gets completions back in order.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol, Sequence


@dataclass(frozen=True)
class GenerationRequest:
    """One prompt to continue.

    Attributes:
        prompt: The exact text the model sees (special tokens included; nothing is added).
        max_tokens: Generation limit.
        temperature: 0 means greedy.
        top_p: Nucleus sampling mass.
        top_k: Sample from the k most likely tokens only; 0 considers all (Qwen3 recommends 20).
        seed: Per-request seed, so each sample is reproducible regardless of its batch.
        stop: Strings that end generation (not included in the text).
        score: Continuations that :meth:`Engine.score` may later be asked after this prompt (the
            correct answer, every option letter). The engine keeps their tokens' log-probabilities
            at each generated position, so scoring them later needs no request of its own as far
            as the generation got. Changes no completion (and is no part of a request-store key).
    """

    prompt: str
    max_tokens: int
    temperature: float = 0.0
    top_p: float = 1.0
    top_k: int = 0
    seed: int | None = None
    stop: tuple[str, ...] = field(default_factory=tuple)
    score: tuple[str, ...] = field(default_factory=tuple)


NOT_IN_KEY = ("score",)  # request fields that change no result: left out of request-store keys


@dataclass(frozen=True)
class Completion:
    """What the engine returned for one request.

    Attributes:
        text: Generated text.
        finish_reason: ``stop`` (end of turn or stop string) or ``length`` (hit max_tokens).
        prompt_tokens: Tokens in the prompt.
        generated_tokens: Tokens generated.
        cached_tokens: Prompt tokens read from the prefix cache.
        stop_reason: The stop string that ended generation; None for end of turn or max_tokens
            (a reasoning model's thinking is closed only if this is its closing tag).
    """

    text: str
    finish_reason: str
    prompt_tokens: int
    generated_tokens: int
    cached_tokens: int
    stop_reason: str | None = None  # default: results stored before this field existed still load


@dataclass(frozen=True)
class ScoreRequest:
    """Score an exact continuation: log P(continuation | prompt), summed over its tokens.

    Attributes:
        prompt: The exact prompt text.
        continuation: The text whose probability is wanted (e.g. " 1085" after an answer prefix).
    """

    prompt: str
    continuation: str


COUNTERS = ("calls", "requests", "prompt_tokens", "cached_tokens", "generated_tokens")  # Engine.counters' keys


def zero_counters() -> dict[str, int]:
    """An engine's ``counters`` before its first call."""
    return dict.fromkeys(COUNTERS, 0)


class Engine(Protocol):
    """A batched text generator.

    Attributes:
        counters: Running totals since start: ``calls`` (batched engine calls; each ``generate``
            or ``score`` is one), ``requests``, ``prompt_tokens``, ``cached_tokens`` (prompt tokens
            read from the prefix cache) and ``generated_tokens``.
    """

    counters: dict[str, int]

    def generate(self, requests: Sequence[GenerationRequest], desc: str) -> list[Completion]:
        """Runs every request in one batched call and returns completions in request order."""
        ...

    def score(self, requests: Sequence[ScoreRequest], desc: str) -> list[float]:
        """Log-probability of every continuation, in one batched call, in request order."""
        ...

    def close(self) -> None:
        """Releases the engine's processes and memory."""
        ...

    def info(self) -> dict[str, Any]:
        """Engine name, version and the settings that can change numbers."""
        ...


def load_engine(model_dir: str, settings: dict[str, Any], cache_dir: str) -> Engine:
    """Starts the vLLM engine (the only backend) on a model directory or hub id."""
    from faithfulness.engines.vllm_engine import VLLMEngine

    return VLLMEngine(model_dir, settings, cache_dir)


def describe_engine(settings: dict[str, Any]) -> dict[str, Any]:
    """What ``info()`` of the engine ``load_engine`` would start reports, without starting it."""
    from faithfulness.engines.vllm_engine import describe

    return describe(settings)
