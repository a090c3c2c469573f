"""Engines: one protocol, a registry of backends chosen by ``engine.backend``, one module per backend.

Only ``faithfulness/engines/vllm_engine.py`` imports vLLM, so version churn stays in one file. The
pipeline hands an engine every request of a stage at once and gets completions back in order. A
backend is registered by name (:func:`register_backend`) with how to start it and how to describe
it before it starts; the rest of the harness reads only the :class:`Engine` protocol and the
``info()`` keys of :data:`INFO_KEYS`. Two backends: ``vllm`` (in-process, ``vllm_engine.py``) and
``server`` (a running vLLM OpenAI-compatible server, ``server.py``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Protocol, Sequence

from faithfulness.errors import ConfigError


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
        """What the engine is: the :data:`INFO_KEYS`, and ``engine_<setting>`` for each setting that can change numbers.

        Rows record ``engine``, ``engine_version`` and ``engine_dtype``, and request-store keys hash
        the whole dict but ``faithfulness.store.INFO_NOT_IDENTITY`` (where the work ran): two engines
        whose ``info()`` agree give the same results.
        """
        ...


INFO_KEYS = ("engine", "engine_version", "engine_dtype")  # what every backend's info() names (rows' provenance)


@dataclass(frozen=True)
class Backend:
    """One engine backend of the registry.

    Attributes:
        name: Its ``engine.backend`` value.
        start: Starts it: (model directory or hub id, the ``engine`` settings, cache folder) → an engine.
        describe: What the started engine's ``info()`` will report, from the model and settings, without
            starting it (so a run whose work is all stored starts no engine); before any results folder,
            so it also checks what can be checked (a server: that it serves this model).
        check: Checks the backend's own settings with the rest of the config (raises ConfigError).
    """

    name: str
    start: Callable[[str, dict[str, Any], str], Engine]
    describe: Callable[[str, dict[str, Any]], dict[str, Any]]
    check: Callable[[dict[str, Any]], None] = lambda settings: None


BACKENDS: dict[str, Backend] = {}


def register_backend(backend: Backend) -> Backend:
    """Adds a backend to the registry (``engine.backend=<name>`` then chooses it)."""
    BACKENDS[backend.name] = backend
    return backend


def backend(settings: dict[str, Any]) -> Backend:
    """The backend the ``engine`` settings name (``backend``; the in-process vLLM engine if unset)."""
    name = settings.get("backend", "vllm")
    if name not in BACKENDS:
        raise ConfigError(f"engine.backend={name!r} is not allowed: choose one of {sorted(BACKENDS)}")
    return BACKENDS[name]


def load_engine(model_dir: str, settings: dict[str, Any], cache_dir: str) -> Engine:
    """Starts the backend the settings name on a model directory or hub id."""
    return backend(settings).start(model_dir, settings, cache_dir)


def describe_engine(model_dir: str, settings: dict[str, Any]) -> dict[str, Any]:
    """What ``info()`` of the engine ``load_engine`` would start reports, without starting it."""
    info = backend(settings).describe(model_dir, settings)
    missing = [key for key in INFO_KEYS if key not in info]
    assert not missing, f"backend {settings.get('backend')!r} describes no {missing}"
    return info


def _start_vllm(model_dir: str, settings: dict[str, Any], cache_dir: str) -> Engine:
    from faithfulness.engines.vllm_engine import VLLMEngine  # vllm is imported only when an engine starts

    return VLLMEngine(model_dir, settings, cache_dir)


def _describe_vllm(model_dir: str, settings: dict[str, Any]) -> dict[str, Any]:
    from faithfulness.engines.vllm_engine import describe

    return describe(settings)


def _start_server(model_dir: str, settings: dict[str, Any], cache_dir: str) -> Engine:
    from faithfulness.engines.server import ServerEngine  # openai and transformers: only when a server run starts

    return ServerEngine(model_dir, settings, cache_dir)


def _describe_server(model_dir: str, settings: dict[str, Any]) -> dict[str, Any]:
    from faithfulness.engines.server import describe

    return describe(model_dir, settings)


def _check_server(settings: dict[str, Any]) -> None:
    from faithfulness.engines.server import check

    check(settings)


register_backend(Backend("vllm", _start_vllm, _describe_vllm))
register_backend(Backend("server", _start_server, _describe_server, _check_server))
