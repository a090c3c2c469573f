"""The whole config checked once, before any folder, download or engine: one line per problem.

:func:`load` builds the typed config (:func:`parse`: each key's type and range, declared in
``sections.py``), then checks what relates keys to each other, resolves the W&B mode and the
mistake writer's model config, and checks the two folders a run writes to. A bad value is a
:class:`~faithfulness.errors.ConfigError` (exit code 2); an unusable folder a
:class:`~faithfulness.errors.StateError` (exit code 3). The task checks its own keys (``digits``,
``subject``, the upper bound of ``n``) when it is built here.
"""

from __future__ import annotations

import netrc
import os
import re
from dataclasses import asdict, fields, replace
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from faithfulness import hints, paths
from faithfulness.config.fields import build
from faithfulness.config.sections import ModelSpec, RunConfig, Wandb
from faithfulness.engines import backend
from faithfulness.errors import ConfigError
from faithfulness.loading.hydra import MODEL_CONFIGS, load_model_config
from faithfulness.mistake_writer import wants_writer
from faithfulness.prompts import FORMATS
from faithfulness.suite import choosable
from faithfulness.tasks import TASKS, make_task

# Tokens of question, instructions and chat markup around a CoT in the longest prompt (~100 with
# the chat template and a 16-operand question), so engine.max_model_len never cuts a prompt.
PROMPT_ROOM = 128
WANDB_MODES = ("auto", "online", "offline", "disabled")
NOT_TASK_KEYS = ("dataset", "cache_dir")  # task fields make_task sets from the task's name and cache_dir


def load(plain: dict[str, Any]) -> RunConfig:
    """Checks a resolved plain config (``faithfulness.loading.hydra.to_plain``) and returns it typed.

    Raises:
        ConfigError: for a bad value, naming the key, the value and what is allowed.
        StateError: for a results or cache folder that cannot be made or written.
    """
    config = parse(plain)
    _check_tests(config)
    _check_prompts(config)
    _check_context(config)
    backend(asdict(config.engine)).check(asdict(config.engine))  # a registered backend, its own settings
    _check_model(config.model, "model")
    _check_aoc_steps(config.aoc.steps)
    task = make_task(config)  # the task checks its own keys
    if config.runs("biased_context"):
        _check_hints(config, task.kind.name, task.name)
    config = replace(config, wandb=resolve_wandb(config.wandb, config.results_dir), writer=writer_model(config))
    if wants_writer(config) and config.engine.backend == "server":  # one server, one model
        raise ConfigError(
            f"mistakes.model={config.mistakes.model!r} is not allowed with engine=server: the server serves the "
            "subject model only; choose mistakes.model=null (the subject writes them) or mistakes.writer=rule"
        )
    paths.check_folder("results_dir", config.results_dir)
    paths.check_folder("cache_dir", config.cache_dir)
    return config


def parse(plain: dict[str, Any]) -> RunConfig:
    """Types and ranges of every key (``sections.py``); the top level also takes the task's own keys."""
    name = plain.get("task")
    if name not in TASKS:
        raise ConfigError(f"task={name!r} is not allowed: choose one of {sorted(TASKS)}")
    own = [f.name for f in fields(TASKS[name]) if f.init and f.name not in NOT_TASK_KEYS]  # type: ignore[arg-type]
    block = dict(plain)
    tags = (block.get("wandb") or {}).get("tags")
    if isinstance(tags, str):  # wandb.tags=one: a single tag
        block["wandb"] = {**block["wandb"], "tags": [tags]}
    config = build(RunConfig, block, extra=own)
    return replace(config, task_keys={k: plain[k] for k in own if k in plain}, plain=plain)


def _check_tests(config: RunConfig) -> None:
    names = list(config.perturbations)
    known = choosable() + ["all"]  # every test of faithfulness/registry.py but the original; all: hydra.expand_tests
    if not names:
        raise ConfigError(f"perturbations=[] is not allowed: name at least one of {known}")
    unknown = [name for name in names if name not in known]
    if unknown:
        raise ConfigError(f"perturbations={unknown} is not allowed: choose from {known}")
    twice = sorted({name for name in names if names.count(name) > 1})
    if twice:
        raise ConfigError(f"perturbations={names} is not allowed: name each test once ({', '.join(twice)} twice)")
    if config.runs("adding_mistakes") and config.mistakes.writer in ("model", "auto"):
        if "{text}" not in config.mistakes.prompt:
            raise ConfigError(f"mistakes.prompt={config.mistakes.prompt!r} is not allowed: must contain {{text}}")
    if config.runs("paraphrasing") and "{text}" not in config.paraphrase.prompt:
        raise ConfigError(f"paraphrase.prompt={config.paraphrase.prompt!r} is not allowed: must contain {{text}}")


def _check_hints(config: RunConfig, answer_type: str, task: str) -> None:
    """The hints of a run with ``biased_context``: its block, a usable judge prompt, templates that fit the task."""
    block = config.biased_context
    if block is None:
        raise ConfigError(
            "biased_context=null is not allowed when perturbations name biased_context: "
            "give its hints, targets and templates (conf/config.yaml)"
        )
    if block.judge and not all(key in block.judge_prompt for key in ("{hint}", "{cot}")):
        raise ConfigError(
            f"biased_context.judge_prompt={block.judge_prompt!r} is not allowed: must contain {{hint}} and {{cot}}"
        )
    hints.hint_templates(block, answer_type, task)


def _check_aoc_steps(steps: tuple[int, ...] | None) -> None:
    if steps is not None and not (len(steps) == 2 and 1 <= steps[0] <= steps[1]):
        raise ConfigError(
            f"aoc.steps={list(steps)!r} is not allowed: null or [low, high], whole numbers, "
            "1 ≤ low ≤ high (e.g. [3, 6])"
        )


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


def _check_model(model: ModelSpec, key: str) -> None:
    """The keys each model source needs, and thinking tags that can be found."""
    if model.source == "hf":
        if not model.path:
            raise ConfigError(f"{key}.path={model.path!r} is not allowed: give a hub id or a local directory")
    else:
        if model.sha256 is None or not re.fullmatch(r"[0-9a-f]{64}", model.sha256):
            raise ConfigError(f"{key}.sha256={model.sha256!r} is not allowed: must be 64 lowercase hex digits")
        for name in ("packages", "files"):
            if not getattr(model, name):
                value = getattr(model, name)
                raise ConfigError(f"{key}.{name}={value!r} is not allowed: must be a non-empty list of strings")
    tags = model.think_tags
    if model.reasoning and (not tags.open or not tags.close):
        raise ConfigError(f"{key}.think_tags.open={tags.open!r} and close={tags.close!r} must both be non-empty")


def writer_model(config: RunConfig) -> ModelSpec | None:
    """The mistake writer's model config, or None when the subject model writes the mistakes.

    ``mistakes.model`` names a model config (``smollm2-135m``, as ``model=`` does) or a local model
    directory (read as ``model=hf model.path=<dir>``); naming the subject model means the subject.

    Raises:
        ConfigError: for a name that is neither, listing the model configs.
    """
    name = config.mistakes.model
    if name is None:
        return None
    file = MODEL_CONFIGS / f"{name}.yaml"
    if file.is_file():
        plain = load_model_config(file)
    elif Path(name).expanduser().is_dir():
        plain = load_model_config(MODEL_CONFIGS / "hf.yaml", {"path": str(Path(name).expanduser().resolve())})
    else:
        known = sorted(p.stem for p in MODEL_CONFIGS.glob("*.yaml") if p.stem != "hf" and not p.stem.startswith("_"))
        raise ConfigError(
            f"mistakes.model={name!r} is not allowed: choose null (the subject model), a model "
            f"config ({', '.join(known)}) or a local model directory"
        )
    model = build(ModelSpec, plain, "mistakes.model.")
    _check_model(model, "mistakes.model")
    return None if model.name == config.model.name else model


def resolve_wandb(wandb: Wandb, results_dir: str) -> Wandb:
    """``mode=auto`` made concrete, ``dir`` defaulted to ``results_dir``.

    ``auto`` (the default) means ``WANDB_MODE`` if set, else online when an API key is configured
    (``WANDB_API_KEY`` or a ``wandb login`` entry in ~/.netrc), else disabled: a new user is never asked
    to log in.
    """
    return replace(wandb, mode=_wandb_mode(wandb.mode), dir=wandb.dir or results_dir)


def _wandb_mode(mode: str) -> str:
    if mode != "auto":
        return mode
    env = os.environ.get("WANDB_MODE")
    if env:
        resolved = {"dryrun": "offline", "run": "online"}.get(env, env)
        if resolved not in WANDB_MODES[1:]:
            raise ConfigError(
                f"WANDB_MODE={env!r} is not allowed (wandb.mode=auto): choose one of {list(WANDB_MODES[1:])}"
            )
        return resolved
    return "online" if os.environ.get("WANDB_API_KEY") or _netrc_has_key() else "disabled"


def _netrc_has_key() -> bool:
    """Whether ``wandb login`` stored a key for the W&B host (the key itself is never read out)."""
    host = urlparse(os.environ.get("WANDB_BASE_URL", "https://api.wandb.ai")).hostname or "api.wandb.ai"
    try:
        return netrc.netrc(os.environ.get("NETRC")).authenticators(host) is not None
    except (OSError, netrc.NetrcParseError):
        return False
