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

from dataclasses import asdict, dataclass
from typing import Any, Callable

from faithfulness.config.sections import ModelSpec, RunConfig
from faithfulness.engines import describe_engine
from faithfulness.engines.cached import CachedEngine, LazyEngine
from faithfulness.engines.process import ProcessEngine
from faithfulness.models import ResolvedModel, resolve_model
from faithfulness.prompts import PromptRenderer
from faithfulness.store import RequestStore, request_context


def wants_writer(config: RunConfig) -> bool:
    """Whether a model other than the subject writes this run's mistakes."""
    return config.writer is not None and config.runs("adding_mistakes") and config.mistakes.writer != "rule"


def writer_engine(
    config: RunConfig,
    model: ModelSpec,
    store: RequestStore,
    timings: dict[str, float],
    before_start: Callable[[], None] | None = None,
) -> tuple[CachedEngine, LazyEngine, ResolvedModel]:
    """The writer's engine (started in its own process at its first request the store lacks, after ``before_start``)."""
    resolved = resolve_model(model, config.cache_dir)
    settings = asdict(config.engine) | {
        k: getattr(model, k) for k in ("dtype", "tensor_parallel_size") if getattr(model, k) is not None
    }
    launch = lambda: ProcessEngine(resolved.path, settings, config.cache_dir)  # noqa: E731
    lazy = LazyEngine(launch, describe_engine(resolved.path, settings), timings, before_start)
    return CachedEngine(lazy, store, request_context(resolved, lazy.info()), config.store_chunk), lazy, resolved


@dataclass
class Writer:
    """A mistake writer other than the subject model: its config, engine and prompts."""

    model: ModelSpec
    resolved: ResolvedModel
    engine: CachedEngine
    renderer: PromptRenderer
    lazy: LazyEngine  # the engine behind ``engine``: closed when the writer is done, restarted if asked again

    def done(self) -> None:
        """Closes the writer's engine (if it started) so the subject's can start again: one engine at a time."""
        self.lazy.suspend()

    def summary(self) -> dict[str, Any]:
        """The writer's name, revision and requests (from the store / to its engine), for summary.json."""
        return {
            "model": self.model.name,
            "revision": self.resolved.revision,
            **{k: self.engine.counters[k] for k in ("to_engine", "from_store")},
        }


def build_writer(
    config: RunConfig,
    store: RequestStore,
    timings: dict[str, float],
    make_renderer: Callable[[ModelSpec, str, ResolvedModel], PromptRenderer],
    before_start: Callable[[], None] | None = None,
) -> Writer | None:
    """The separate mistake writer of ``mistakes.model``; None when the subject model writes the mistakes.

    Args:
        config: The run's config (``config.writer``: the writer's model config, set by ``rules.load``).
        store: The run's request store (the writer's results are kept there too).
        timings: Gets the writer's engine start time.
        make_renderer: Builds a prompt renderer from a model config, a prompt format and a model (the pipeline's).
        before_start: Called before the writer's engine starts (closes the subject's: one engine at a time).
    """
    model = config.writer
    if model is None or not wants_writer(config):
        return None
    engine, lazy, resolved = writer_engine(config, model, store, timings, before_start)
    # the writer's own prompt format (a base writer gets human_assistant prompts, a chat model its template)
    return Writer(model, resolved, engine, make_renderer(model, model.prompt_format, resolved), lazy)
