"""A mistake writer other than the subject model (``mistakes.model=<model config>``).

Lanham et al. 2023 (§3.2) had a separate pretrained model write the mistakes; by default the
subject model writes them here. With ``mistakes.model`` set, the mistake rewrites go to that model,
in a process of its own (vLLM frees no engine in-process; faithfulness/engines/process.py), and
their results go to the run's request store like every other stage, keyed by the writer's own
identity. When the run starts its own engines, the subject's runs in a process too and is closed
while the writer works, so one engine is alive at a time. An engine handed in (tests, a sweep's
worker) stays up: the writer then runs beside it, which needs memory for both.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from omegaconf import OmegaConf

from faithfulness.config import REPO_ROOT, register_resolvers
from faithfulness.engines import describe_engine
from faithfulness.engines.cached import CachedEngine, LazyEngine
from faithfulness.engines.process import ProcessEngine
from faithfulness.errors import ConfigError
from faithfulness.models import ResolvedModel, resolve_model
from faithfulness.prompts import PromptRenderer
from faithfulness.store import RequestStore, request_context

MODEL_CONFIGS = REPO_ROOT / "conf" / "model"


def writer_config(cfg: dict[str, Any]) -> dict[str, Any] | None:
    """The writer's model config, or None when the subject model writes the mistakes.

    ``mistakes.model`` names a model config (``smollm2-135m``, as ``model=`` does) or a local model
    directory (read as ``model=hf model.path=<dir>``); naming the subject model means the subject.

    Raises:
        ConfigError: for a name that is neither, listing the model configs.
    """
    name = cfg["mistakes"].get("model")
    if name is None:
        return None
    file = MODEL_CONFIGS / f"{name}.yaml"
    if file.is_file():
        model = load_model_config(file)
    elif Path(str(name)).expanduser().is_dir():
        model = load_model_config(MODEL_CONFIGS / "hf.yaml", {"path": str(Path(str(name)).expanduser().resolve())})
    else:
        known = sorted(p.stem for p in MODEL_CONFIGS.glob("*.yaml") if p.stem != "hf" and not p.stem.startswith("_"))
        raise ConfigError(
            f"mistakes.model={name!r} is not allowed: choose null (the subject model), a model "
            f"config ({', '.join(known)}) or a local model directory"
        )
    return None if model["name"] == cfg["model"]["name"] else model


def load_model_config(file: Path, overrides: dict[str, Any] | None = None) -> dict[str, Any]:
    """A ``conf/model`` file resolved as Hydra would (its ``defaults`` first, then itself, then ``overrides``)."""
    register_resolvers()
    node = OmegaConf.load(file)
    parts = [OmegaConf.load(MODEL_CONFIGS / f"{d}.yaml") for d in node.pop("defaults", []) if d != "_self_"]
    merged = OmegaConf.merge(*parts, node, overrides or {})
    return OmegaConf.to_container(OmegaConf.create({"model": merged}), resolve=True)["model"]  # type: ignore[index]


def writer_engine(
    cfg: dict[str, Any], model: dict[str, Any], store: RequestStore, timings: dict[str, float]
) -> tuple[CachedEngine, ResolvedModel]:
    """The writer's engine (started in its own process at its first request the store lacks)."""
    resolved = resolve_model(model, cfg["cache_dir"])
    settings = dict(cfg["engine"]) | {
        k: model[k] for k in ("dtype", "tensor_parallel_size") if model.get(k) is not None
    }
    launch = lambda: ProcessEngine(resolved.path, settings, cfg["cache_dir"])  # noqa: E731
    lazy = LazyEngine(launch, describe_engine(settings), timings)
    return CachedEngine(lazy, store, request_context(resolved, lazy.info()), cfg["store_chunk"]), resolved


@dataclass
class Writer:
    """A mistake writer other than the subject model: its config, engine and prompts."""

    model: dict[str, Any]
    resolved: ResolvedModel
    engine: CachedEngine
    renderer: PromptRenderer

    def summary(self) -> dict[str, Any]:
        """The writer's name, revision and requests (from the store / to its engine), for summary.json."""
        return {
            "model": self.model["name"],
            "revision": self.resolved.revision,
            **{k: self.engine.counters[k] for k in ("to_engine", "from_store")},
        }


def build_writer(
    cfg: dict[str, Any],
    store: RequestStore,
    timings: dict[str, float],
    make_renderer: Callable[[dict[str, Any], ResolvedModel], PromptRenderer],
) -> Writer | None:
    """The separate mistake writer of ``mistakes.model``; None when the subject model writes the mistakes.

    Args:
        cfg: The run's config.
        store: The run's request store (the writer's results are kept there too).
        timings: Gets the writer's engine start time.
        make_renderer: Builds a prompt renderer from a config and a model (the pipeline's).
    """
    model = writer_config(cfg)
    if model is None or "adding_mistakes" not in cfg["perturbations"] or cfg["mistakes"]["writer"] == "rule":
        return None
    engine, resolved = writer_engine(cfg, model, store, timings)
    # the writer's own prompt format (a base writer gets human_assistant prompts, a chat model its template)
    return Writer(
        model,
        resolved,
        engine,
        make_renderer({**cfg, "model": model, "prompt_format": model["prompt_format"]}, resolved),
    )
