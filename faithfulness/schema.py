"""The run config as typed dataclasses: every key's type, range and meaning in one place.

:func:`build` turns the resolved plain dict (``conf/config.yaml`` after Hydra) into these
dataclasses and refuses a bad value with one line naming the key, the value and what is allowed.
The checks that relate keys to each other (and to the filesystem) are in ``faithfulness/validate.py``.

Why not Hydra structured configs: task configs put their difficulty keys at the top level
(``digits``, ``operands``, ``subject``) and model configs carry keys of their own, so the top level
and ``model`` must stay open; OmegaConf checks types but not ranges, and its errors span several
lines. The tasks check their own keys (``faithfulness/tasks``).
"""

from __future__ import annotations

import math
import typing
from dataclasses import MISSING, dataclass, field, fields, is_dataclass
from typing import Any, ClassVar

from faithfulness.data.sycophancy import SUBDOMAINS as SYCOPHANCY_SUBDOMAINS
from faithfulness.errors import ConfigError


def setting(
    default: Any = MISSING,
    doc: str = "",
    *,
    low: float | None = None,
    high: float | None = None,
    above: float | None = None,
    choices: tuple[Any, ...] | None = None,
) -> Any:
    """A dataclass field with its one-line meaning and its allowed range (``low`` ≤ v ≤ ``high``, v > ``above``)."""
    meta = {"doc": doc, "low": low, "high": high, "above": above, "choices": choices}
    return field(default=default, metadata=meta)


@dataclass(frozen=True, kw_only=True)
class Sampling:
    """How CoTs are generated (and the rest of every perturbed CoT regenerated)."""

    temperature: float = setting(0.0, "0 is greedy; the paper sampled at 0.8", low=0)
    top_p: float = setting(1.0, "nucleus sampling mass; the paper used 0.95", above=0, high=1)
    top_k: int = setting(0, "sample from the k most likely tokens; 0: all (reasoning models recommend 20)", low=0)
    max_tokens: int = setting(
        384, "CoT length limit (a reasoning model's thinking budget); cut CoTs are counted", low=1
    )


@dataclass(frozen=True, kw_only=True)
class Answer:
    """How forced answers are generated."""

    temperature: float = setting(0.0, "forced answers are greedy", low=0)
    top_p: float = setting(1.0, "nucleus sampling mass", above=0, high=1)
    max_tokens: int = setting(24, "a 20-digit sum at one token per digit, plus markup", low=1)
    stop: tuple[str, ...] = setting(("\n", ". "), "strings that end the answer (not part of it)")
    extract: str = setting(
        "flexible",
        "the reading the table and summary show: strict (the task's parser) or flexible "
        "(also '196 + 240 = 436.', '<answer>436</answer>'; both are stored)",
        choices=("strict", "flexible"),
    )


@dataclass(frozen=True, kw_only=True)
class Mistakes:
    """The adding-mistakes test."""

    writer: str = setting(
        "rule",
        "rule: change one digit of a number; model: the subject model rewrites the step; "
        "auto: rule where the step has a number, model elsewhere",
        choices=("rule", "model", "auto"),
    )
    model: str | None = setting(None, "the model that writes mistakes; null = the subject model (the only choice yet)")
    prompt: str = setting("", "few-shot prompt of the model writer; {text} is the step")
    prompts: dict[str, str] | None = setting(None, "few-shot prompts a task config picks from (arithmetic, statement)")


@dataclass(frozen=True, kw_only=True)
class Paraphrase:
    """The paraphrasing test."""

    prompt: str = setting("", "instruction to reword steps 1..k; {text} is the text")


@dataclass(frozen=True, kw_only=True)
class Filler:
    """The filler-tokens test."""

    mode: str = setting(
        "per_question",
        "per_question: m = 0, step, 2·step, … up to each question's longest CoT (the "
        "paper); run: `points` values up to the run's longest CoT",
        choices=("per_question", "run"),
    )
    step: int = setting(5, "tokens between filler lengths in per_question mode (the paper's)", low=1)
    points: int = setting(5, "run mode: filler lengths m, evenly spaced from 0 to the longest CoT's tokens", low=2)
    string: str = setting("auto", "the filler repeated m times; auto: the first that is one token per repeat")


@dataclass(frozen=True, kw_only=True)
class AOC:
    """How the area over the % same curve is computed (faithfulness/summaries.py states both definitions)."""

    adding_mistakes: str = setting(
        "last_step",
        "last_step: the curve ends at the last corrupted step; full_cot: at the unmodified CoT (100% same)",
        choices=("last_step", "full_cot"),
    )
    steps: tuple[int, ...] | None = setting(
        None, "e.g. [3, 6]: also the AOC over CoTs of 3–6 steps, beside the whole set"
    )


@dataclass(frozen=True, kw_only=True)
class HintSpec:
    """One hint template of the biased-context test (``biased_context.templates.<name>``)."""

    text: str = setting(
        MISSING, "the hinted question: {question} is the task's question, {answer} the answer X it names"
    )
    answer_type: str = setting(
        MISSING,
        "what X is: an option letter (needs a task with options) or an integer (a sum)",
        choices=("letter", "integer"),
    )
    cues: tuple[str, ...] = setting(
        (), "regular expressions (any case) whose match in a CoT means it mentions this hint"
    )


@dataclass(frozen=True, kw_only=True)
class BiasedContext:
    """The biased-context test: each question asked again with a hint naming an answer X (``faithfulness/hints.py``)."""

    hints: tuple[str, ...] = setting(("turpin", "professor", "metadata"), "the hint kinds asked: names of templates")
    targets: tuple[str, ...] = setting(
        ("wrong", "correct"), "X: a seeded wrong answer, and/or the correct one as a control"
    )
    judge: bool = setting(False, "also ask the subject model whether each hinted CoT mentions the hint")
    judge_prompt: str = setting("", "the judge's question; {hint} is the hint, {cot} the hinted CoT")
    templates: dict[str, HintSpec] = setting(MISSING, "the hint kinds by name (turpin, professor, metadata, wrong_sum)")


@dataclass(frozen=True, kw_only=True)
class PromptStrings:
    """The strings of one prompt format (see ``faithfulness.prompts.PromptTemplate``)."""

    question: str = setting(MISSING, "the human turn; {question} is the task's question")
    cot_prefix: str = setting(MISSING, "text the assistant turn starts with, before the CoT")
    answer_question: str = setting(MISSING, "the follow-up turn that asks for the answer")
    answer_prefix: str = setting(MISSING, "text the forced answer follows")
    add_bos: bool = setting(True, "human_assistant and plain prompts start with the BOS token")


DTYPES = ("auto", "float32", "float", "bfloat16", "float16", "half")  # what vLLM's ModelConfig accepts


@dataclass(frozen=True, kw_only=True)
class EngineSettings:
    """The vLLM engine (a model config may set dtype, tensor_parallel_size, gpu_memory_utilization)."""

    dtype: str = setting("float32", "fp32 answers do not change with batch composition; bf16 ones can", choices=DTYPES)
    max_model_len: int | None = setting(2048, "context window; null = the model's own", low=1)
    enforce_eager: bool = setting(False, "skip graph compilation (faster start, slower decoding)")
    tensor_parallel_size: int = setting(1, "GPUs one model is split over", low=1)
    gpu_memory_utilization: float = setting(0.85, "share of GPU memory vLLM may take", above=0, high=1)
    seed: int = setting(0, "the engine's own seed (requests carry theirs)", low=0)
    block_size: int | None = setting(None, "KV block tokens; null = engine default on GPU, 32 on CPU", low=1)
    kv_cache_gib: int = setting(4, "CPU KV cache in GiB; vLLM reads it as a whole number", low=1)
    max_num_seqs: int | None = setting(None, "requests decoded at once; null = vLLM's default", low=1)
    max_num_batched_tokens: int | None = setting(
        None, "tokens per engine step (prefill chunk); null = vLLM's default", low=1
    )


@dataclass(frozen=True, kw_only=True)
class ModelSpec:
    """A model config (``conf/model/*.yaml``); source-specific keys (path, sha256, ...) stay in the dict."""

    extra_keys: ClassVar[bool] = True  # model configs carry keys of their own

    name: str = setting(MISSING, "results folder part (made a safe slug) and the rows' model column")
    source: str = setting(
        "hf", "hf: hub id or local folder; packaged: GGUF shipped in PyPI wheels", choices=("hf", "packaged")
    )
    family: str | None = setting(None, "sizes of one family are compared in the study")
    size: int | None = setting(None, "parameter count", low=1)
    prompt_format: str = setting("chat", "the default prompt format for this model")
    reasoning: str | None = setting(
        None, "think_tags: the CoT is the model's thinking block, answered after it closes", choices=("think_tags",)
    )


@dataclass(frozen=True, kw_only=True)
class RunConfig:
    """One run's resolved config (``conf/config.yaml``); task-specific keys are checked by the task."""

    extra_keys: ClassVar[bool] = True  # task configs add their own top-level keys (digits, operands, subject)

    task: str = setting(MISSING, "the task's config name")
    n: int = setting(50, "problems per run (each task sets its own maximum)", low=1)
    seed: int = setting(0, "problems and per-request CoT sampling seeds derive from it", low=0)
    samples: int = setting(1, "CoTs per problem", low=1)
    perturbations: tuple[str, ...] = setting((), "the tests to run: any non-empty subset, each once")
    cut_points: int | None = setting(
        None, "step-based tests at every step (null) or at this many evenly spaced levels", low=2
    )
    verbose: bool = setting(False, "vLLM's own output on the console (true) or in the run's engine.log (false)")
    score_answers: bool = setting(True, "also record log P(original answer) and log P(correct answer)")
    bootstrap_resamples: int = setting(1000, "question-clustered bootstrap resamples per CI; 0 = no CIs", low=0)
    store_chunk: int = setting(256, "engine requests per stored chunk (a kill loses at most one)", low=1)
    sampling: Sampling = setting(Sampling(), "CoT generation")
    answer: Answer = setting(Answer(), "forced answers")
    mistakes: Mistakes = setting(Mistakes(), "the adding-mistakes test")
    paraphrase: Paraphrase = setting(Paraphrase(), "the paraphrasing test")
    rewrite_max_tokens: int = setting(384, "length limit of a model-written mistake or paraphrase", low=1)
    filler: Filler = setting(Filler(), "the filler-tokens test")
    aoc: AOC = setting(AOC(), "the AOC definitions")
    biased_context: BiasedContext | None = setting(None, "the biased-context test (run when perturbations name it)")
    # keys of the dataset tasks (multiple choice, sycophancy): declared here, checked again by the task
    data_source: str | None = setting(
        None,
        "multiple choice and sycophancy: package (pinned offline files) or hub (the original datasets, online)",
        choices=("package", "hub"),
    )
    data_revision: str | None = setting(None, "hub dataset revision when data_source=hub (a commit pins it)")
    subdomain: str | None = setting(
        None,
        "task=sycophancy: nlp_survey, political_typology_quiz, philpapers2020 (hub only) or all",
        choices=("all", *SYCOPHANCY_SUBDOMAINS),
    )
    prompt_format: str = setting("chat", "a key of prompts")
    prompts: dict[str, PromptStrings] = setting(MISSING, "the strings of each prompt format")
    engine: EngineSettings = setting(EngineSettings(), "the vLLM engine")
    results_dir: str = setting("results", "where results folders go")
    cache_dir: str = setting("~/.cache/faithfulness", "converted models, wheels, vLLM compile cache")
    model: ModelSpec = setting(MISSING, "the subject model")
    wandb: Any = setting(None, "the W&B mirror (checked by faithfulness.tracking.settings)")


def build(cls: type, block: Any, prefix: str = "") -> Any:
    """Checks a plain dict against dataclass ``cls`` and returns the instance.

    Raises:
        ConfigError: one line naming the first bad key, its value and what is allowed.
    """
    if not isinstance(block, dict):
        raise ConfigError(f"{prefix.rstrip('.') or 'config'}={block!r} is not allowed: must be a group of settings")
    names = [f.name for f in fields(cls)]
    if not getattr(cls, "extra_keys", False):
        unknown = sorted(set(block) - set(names))
        if unknown:
            raise ConfigError(f"{prefix}{unknown[0]} is not a setting: choose from {names}")
    hints = typing.get_type_hints(cls)
    values = {}
    for f in fields(cls):
        key = prefix + f.name
        if f.name not in block:
            if f.default is MISSING:
                raise ConfigError(f"{key} is missing: {f.metadata['doc']}")
            continue
        values[f.name] = _check(key, block[f.name], hints[f.name], f.metadata)
    return cls(**values)


def _check(key: str, value: Any, kind: Any, meta: Any) -> Any:
    args = typing.get_args(kind)
    nullable = type(None) in args
    if nullable:  # X | None
        if value is None:
            return None
        kind = next(a for a in args if a is not type(None))
        args = typing.get_args(kind)
    if kind is Any:
        return value
    if is_dataclass(kind):
        return build(kind, value, f"{key}.")
    origin = typing.get_origin(kind)
    if origin is dict:
        if not isinstance(value, dict) or not value:
            raise ConfigError(f"{key}={value!r} is not allowed: must be a non-empty group of named settings")
        return {name: _check(f"{key}.{name}", v, args[1], meta) for name, v in value.items()}
    if origin is tuple:
        item = args[0]
        if not isinstance(value, (list, tuple)) or not all(_is_a(v, item) for v in value):
            noun = {str: "strings", int: "whole numbers"}.get(item, "values")
            raise ConfigError(f"{key}={value!r} is not allowed: must be a list of {noun}")
        return tuple(value)
    if not _is_a(value, kind) or not _in_range(value, meta):
        raise ConfigError(f"{key}={value!r} is not allowed: {allowed(kind, meta, nullable)}")
    return float(value) if kind is float else value


def _is_a(value: Any, kind: Any) -> bool:
    if isinstance(value, bool):
        return kind is bool  # YAML booleans are ints to Python: true must not pass as 1
    if kind is float:
        return isinstance(value, (int, float)) and math.isfinite(value)
    return isinstance(value, kind)


def _in_range(value: Any, meta: Any) -> bool:
    if meta.get("choices") is not None:
        return value in meta["choices"]
    low, high, above = meta.get("low"), meta.get("high"), meta.get("above")
    return (low is None or value >= low) and (high is None or value <= high) and (above is None or value > above)


def allowed(kind: Any, meta: Any, nullable: bool = False) -> str:
    """What a field allows, in words: ``must be a whole number ≥ 1``, ``choose 'rule' or 'model'``."""
    choices = meta.get("choices")
    if choices is not None:
        names = [repr(c) for c in choices]
        return f"choose {names[0]} or {names[1]}" if len(names) == 2 else f"choose one of [{', '.join(names)}]"
    noun = {int: "a whole number", float: "a number", bool: "true or false", str: "a string"}[kind]
    low, high, above = meta.get("low"), meta.get("high"), meta.get("above")
    bounds = []
    if above is not None:
        bounds.append(f"> {above:g}")
    if low is not None and high is not None:
        bounds = [f"from {low:g} to {high:g}"]
    elif low is not None:
        bounds.append(f"≥ {low:g}")
    elif high is not None:
        bounds.append(f"≤ {high:g}")
    return f"must be {'null or ' if nullable else ''}{noun} {' and '.join(bounds)}".rstrip()
