"""The whole config checked once, before any folder, download or engine: one line per problem.

:func:`validate` builds the typed config (``faithfulness/schema.py``: each key's type and range),
then checks what relates keys to each other, the W&B block and the two folders a run writes to. A
bad value is a :class:`~faithfulness.errors.ConfigError` (exit code 2); an unusable folder a
:class:`~faithfulness.errors.StateError` (exit code 3). Task-specific keys (``digits``, ``operands``,
``subject``, the upper bound of ``n``) are checked by the task itself when it is built.
"""

from __future__ import annotations

import re
from dataclasses import replace
from typing import Any

from faithfulness import hints, paths, tracking
from faithfulness.errors import ConfigError
from faithfulness.prompts import FORMATS
from faithfulness.registry import choosable
from faithfulness.schema import RunConfig, build

# Tokens of question, instructions and chat markup around a CoT in the longest prompt (~100 with
# the chat template and a 16-operand question), so engine.max_model_len never cuts a prompt.
PROMPT_ROOM = 128


def validate(cfg: dict[str, Any]) -> RunConfig:
    """Checks a resolved plain config and returns it typed (``wandb`` as ``tracking.Settings``).

    Raises:
        ConfigError: for a bad value, naming the key, the value and what is allowed.
        StateError: for a results or cache folder that cannot be made or written.
    """
    config = build(RunConfig, cfg)
    _check_tests(config)
    _check_hints(cfg)
    _check_prompts(config)
    _check_context(config)
    _check_model(cfg["model"])
    _check_readings_and_writer(cfg)
    config = replace(config, wandb=tracking.settings(cfg))
    paths.check_folder("results_dir", config.results_dir)
    paths.check_folder("cache_dir", config.cache_dir)
    return config


def _check_tests(config: RunConfig) -> None:
    names = list(config.perturbations)
    known = choosable() + ["all"]  # every test of faithfulness/registry.py but the original; all: config.expand_tests
    if not names:
        raise ConfigError(f"perturbations=[] is not allowed: name at least one of {known}")
    unknown = [name for name in names if name not in known]
    if unknown:
        raise ConfigError(f"perturbations={unknown} is not allowed: choose from {known}")
    twice = sorted({name for name in names if names.count(name) > 1})
    if twice:
        raise ConfigError(f"perturbations={names} is not allowed: name each test once ({', '.join(twice)} twice)")
    if (
        "adding_mistakes" in names
        and config.mistakes.writer in ("model", "auto")
        and "{text}" not in config.mistakes.prompt
    ):
        raise ConfigError(f"mistakes.prompt={config.mistakes.prompt!r} is not allowed: must contain {{text}}")
    if "paraphrasing" in names and "{text}" not in config.paraphrase.prompt:
        raise ConfigError(f"paraphrase.prompt={config.paraphrase.prompt!r} is not allowed: must contain {{text}}")


def _check_hints(cfg: dict[str, Any]) -> None:
    """The hints of a run with ``biased_context``.

    Known kinds, templates with both placeholders, each hint's answer type the task's (a letter hint needs options),
    cues that compile, a usable judge prompt.
    """
    if "biased_context" not in cfg["perturbations"]:
        return
    block = cfg.get("biased_context")
    if not block:
        raise ConfigError(
            "biased_context=null is not allowed when perturbations name biased_context: "
            "give its hints, targets and templates (conf/config.yaml)"
        )
    from faithfulness.tasks import TASKS

    task = TASKS.get(cfg["task"])
    if task is None:
        raise ConfigError(f"task={cfg['task']!r} is not allowed: choose one of {sorted(TASKS)}")
    if block["judge"] and not all(key in block["judge_prompt"] for key in ("{hint}", "{cot}")):
        raise ConfigError(
            f"biased_context.judge_prompt={block['judge_prompt']!r} is not allowed: must contain {{hint}} and {{cot}}"
        )
    hints.hint_templates(block, task.answer_type, cfg["task"])


def _check_readings_and_writer(cfg: dict[str, Any]) -> None:
    """answer.extract and aoc.*, the filler settings, and mistakes.model (a model config or directory)."""
    from faithfulness.filler import check_settings
    from faithfulness.summaries import summary_options
    from faithfulness.writer import writer_config

    summary_options(cfg)
    check_settings(cfg["filler"])
    writer_config(cfg)


def _check_prompts(config: RunConfig) -> None:
    usable = [name for name in config.prompts if name in FORMATS]
    if config.prompt_format not in usable:
        raise ConfigError(f"prompt_format={config.prompt_format!r} is not allowed: choose one of {usable}")
    key, question = f"prompts.{config.prompt_format}.question", config.prompts[config.prompt_format].question
    if "{question}" not in question:
        raise ConfigError(f"{key}={question!r} is not allowed: must contain {{question}}")


def _check_context(config: RunConfig) -> None:
    """The context window must hold the longest prompt: a perturbed CoT (a prefix plus a regenerated rest)."""
    length = config.engine.max_model_len
    needed = 2 * config.sampling.max_tokens + config.answer.max_tokens + PROMPT_ROOM
    if length is not None and length < needed:
        raise ConfigError(
            f"engine.max_model_len={length} is not allowed: must be null or ≥ {needed} (2 × sampling."
            f"max_tokens + answer.max_tokens + {PROMPT_ROOM} for the question and template)"
        )


def _check_model(model: dict[str, Any]) -> None:
    """The keys each model source needs (the rest of ``model`` is checked by ``schema.ModelSpec``)."""
    if model["source"] == "hf":
        if not isinstance(model.get("path"), str) or not model["path"]:
            raise ConfigError(f"model.path={model.get('path')!r} is not allowed: give a hub id or a local directory")
        if model.get("revision") is not None and not isinstance(model["revision"], str):
            raise ConfigError(f"model.revision={model['revision']!r} is not allowed: must be a branch, tag or commit")
        return
    if not isinstance(model.get("sha256"), str) or not re.fullmatch(r"[0-9a-f]{64}", model["sha256"]):
        raise ConfigError(f"model.sha256={model.get('sha256')!r} is not allowed: must be 64 lowercase hex digits")
    for key in ("packages", "files"):
        value = model.get(key)
        if not isinstance(value, list) or not value or not all(isinstance(v, str) for v in value):
            raise ConfigError(f"model.{key}={value!r} is not allowed: must be a non-empty list of strings")
