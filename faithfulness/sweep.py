"""Sweeps in one process tree: every job of one model shares one engine, each model gets a process.

vLLM does not reliably free an engine inside a process (docs/vllm-cpu.md), and Hydra's basic launcher
runs a multirun's jobs one after another in one process. So ``run.py -m`` hands each job to a
worker process that keeps its engine between jobs: all difficulties of one model pay for one
engine start, and a new model (or new engine settings) gets a fresh worker, the old one closing
its engine and exiting first. Jobs run in Hydra's order, where the first swept key varies slowest:
put ``model=`` first (``run.py -m model=a,b digits=1,2,3``) so each model's jobs are adjacent.
Launchers that give every job its own process (Slurm via submitit) do not need this.
"""

from __future__ import annotations

import atexit
import json
import sys
from contextlib import nullcontext
from dataclasses import asdict
from functools import partial
from multiprocessing.connection import Connection

from faithfulness import console, lifeline, pipeline
from faithfulness.child import Child, serve
from faithfulness.config.sections import RunConfig
from faithfulness.engines import describe_engine
from faithfulness.engines.cached import LazyEngine
from faithfulness.models import resolve_model
from faithfulness.provenance import results_dir


class EngineWorker:
    """A child process that runs pipeline jobs on one engine, started on its first job.

    Args:
        key: The engine identity this worker serves (see ``engine_key``).
    """

    def __init__(self, key: str) -> None:
        self.key = key
        self._child = Child(_serve, (), "engine worker")

    def run(self, config: RunConfig) -> pipeline.RunOutput:
        """Runs one job in the worker and returns its output (or raises the job's exception)."""
        return self._child.call(config)

    def close(self) -> None:
        """Asks the worker to close its engine and exit, and waits for it."""
        self._child.close()


def _serve(conn: Connection) -> None:
    """The worker's loop: run jobs until told to stop (or the parent is gone), then close the engine."""
    # a killed sweep must not leave a worker finishing its job (its engine's watchdog follows)
    lifeline.die_with_parent()
    engine: LazyEngine | None = None
    last: RunConfig | None = None  # the last job served: the engine's shutdown lines go to its log

    def job(config: RunConfig) -> pipeline.RunOutput:
        nonlocal engine, last
        last = config
        if engine is None:  # started inside the first run that needs it, which gets its engine.log lines
            info = describe_engine(resolve_model(config.model, config.cache_dir).path, asdict(config.engine))
            engine = LazyEngine(partial(pipeline.start_engine, config), info, {})
        return pipeline.run(config, engine)

    try:
        serve(conn, job)
    finally:
        if engine is not None and last is not None:
            folder = results_dir(last)
            with console.engine_log(folder / "engine.log", last.verbose) if folder.is_dir() else nullcontext():
                engine.close()


def engine_key(config: RunConfig) -> str:
    """What decides whether two jobs can share an engine: the model, engine settings and cache."""
    return json.dumps([asdict(config.model), asdict(config.engine), config.cache_dir], sort_keys=True, default=str)


_current: EngineWorker | None = None
_served: set[str] = set()


def run_shared(config: RunConfig) -> pipeline.RunOutput:
    """Runs a job on the worker of its engine, replacing the worker when the engine changes."""
    global _current
    key = engine_key(config)
    if _current is not None and _current.key != key:
        _current.close()
        _current = None
    if _current is None:
        if key in _served:
            print(
                f"note: model {config.model.name} starts its engine again; put model= first in the sweep "
                "so its jobs are adjacent and share one start",
                file=sys.stderr,
            )
        if not _served:
            atexit.register(close_worker)  # a finished or failed sweep closes the last engine too
        _current = EngineWorker(key)
        _served.add(key)
    return _current.run(config)


def close_worker() -> None:
    """Closes the current worker (registered at exit; also safe to call twice)."""
    global _current
    if _current is not None:
        _current.close()
        _current = None
