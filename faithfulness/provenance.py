"""Provenance: what every row and summary records so a number can be traced to what made it."""

from __future__ import annotations

import hashlib
import importlib.metadata
import json
import platform
from pathlib import Path
from typing import Any

import faithfulness
from faithfulness import paths
from faithfulness.config.sections import RunConfig
from faithfulness.engines import Engine
from faithfulness.models import ResolvedModel
from faithfulness.prompts import PromptRenderer
from faithfulness.store import hash_json
from faithfulness.tasks import Task, difficulty_label, make_task


def run_context(
    config: RunConfig, task: Task, model: ResolvedModel, renderer: PromptRenderer, engine: Engine
) -> dict[str, Any]:
    """The per-run facts every row and the summary record."""
    info = engine.info()
    versions = {name: _version(name) for name in ("torch", "transformers", "numpy", "pyarrow", "hydra-core")}
    versions.update(faithfulness=faithfulness.__version__, python=platform.python_version())
    return {
        "run_id": config_hash(config.plain),
        "model": config.model.name,
        "model_revision": model.revision,
        "model_family": config.model.family,
        "model_size": config.model.size,
        "task": task.name,
        "task_version": task.version,
        "difficulty": difficulty_label(task.difficulty()),
        "difficulty_values": task.difficulty(),
        "task_label": task.label(),
        "answer_type": task.kind.name,
        "data_provenance": json.dumps(task.provenance(), sort_keys=True),
        "seed": config.seed,
        "prompt_format": config.prompt_format,
        "template_hash": renderer.template_hash(),
        "engine": info["engine"],
        "engine_version": info["engine_version"],
        "dtype": str(info.get("engine_dtype")),
        "versions": json.dumps(versions, sort_keys=True),
        "engine_settings": info,
        "cut_points": config.cut_points,
        "reasoning": config.model.reasoning,
    } | task.difficulty()


def _version(name: str) -> str | None:
    try:
        return importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
        return None


# Keys that say where things go, how work is split or where it is mirrored, not what is computed:
# they do not change a run's identity (a run resumed with another store_chunk continues in the same folder).
_NOT_IDENTITY = ("results_dir", "cache_dir", "hydra", "store_chunk", "wandb", "verbose")
# the server backend's where and how (a run resumed against another server of the same model continues)
_ENGINE_NOT_IDENTITY = ("backend", "url", "api_key_env", "served_model", "max_concurrency", "timeout_s", "max_retries")


def config_hash(cfg: dict[str, Any]) -> str:
    """Hash of the resolved plain config's keys that determine results: same config, same folder (for resuming)."""
    identity = {k: v for k, v in cfg.items() if k not in _NOT_IDENTITY}
    if isinstance(identity.get("answer"), dict):  # both readings are in every table: the choice only picks one to show
        identity["answer"] = {k: v for k, v in identity["answer"].items() if k != "extract"}
    if isinstance(identity.get("engine"), dict):  # which backend serves the model: the rows' engine columns say
        identity["engine"] = {k: v for k, v in identity["engine"].items() if k not in _ENGINE_NOT_IDENTITY}
    return hash_json(identity)[:10]


def results_dir(config: RunConfig) -> Path:
    """The deterministic folder of a config's results."""
    run = f"n{config.n}-s{config.samples}-seed{config.seed}-{config_hash(config.plain)}"
    # the model name as a slug, and never a path outside results_dir ("..", "/abs/name")
    return paths.inside(
        Path(config.results_dir).expanduser(), make_task(config).label(), paths.slug(config.model.name), run
    )


def stable_seed(*parts: object) -> int:
    """A per-request sampling seed from its identity: independent of batch order, stable across reruns."""
    digest = hashlib.sha256("/".join(map(str, parts)).encode()).digest()
    return int.from_bytes(digest[:4], "little") >> 1  # 31 bits: fits every engine's seed type
