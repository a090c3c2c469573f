"""An engine in a process of its own, so that closing it frees its memory.

vLLM does not reliably free an engine inside a process (docs/vllm-cpu.md). A run that needs a second
model (a mistake writer other than the subject model) therefore runs each engine in a child
process, as the sweep's workers do (faithfulness/sweep.py): the subject's is closed before the
writer's starts and started again after it, so at most one engine is alive at any time.
"""

from __future__ import annotations

from multiprocessing.connection import Connection
from typing import Any, Sequence

from faithfulness.child import Child, serve
from faithfulness.engines import Completion, GenerationRequest, ScoreRequest, zero_counters


class ProcessEngine:
    """The vLLM engine of ``model_dir`` in a child process; the engine protocol over a pipe.

    Args:
        model_dir: The model directory or hub id.
        settings: The ``engine`` settings.
        cache_dir: The project's cache.

    Raises:
        RuntimeError: when the child dies; the child's own exception when the engine fails to start.
    """

    def __init__(self, model_dir: str, settings: dict[str, Any], cache_dir: str) -> None:
        self._child = Child(_serve, (model_dir, settings, cache_dir), "engine process")
        self._info: dict[str, Any] = self._child.receive()
        self.counters = zero_counters()

    def _call(self, kind: str, requests: Sequence[Any], desc: str) -> list[Any]:
        results, self.counters = self._child.call((kind, list(requests), desc))
        return results

    def generate(self, requests: Sequence[GenerationRequest], desc: str) -> list[Completion]:
        """Completions in request order, from the child's engine."""
        return self._call("generate", requests, desc)

    def score(self, requests: Sequence[ScoreRequest], desc: str) -> list[float]:
        """Log-probabilities in request order, from the child's engine."""
        return self._call("score", requests, desc)

    def close(self) -> None:
        """Closes the child's engine and waits for the child to exit."""
        self._child.close()

    def info(self) -> dict[str, Any]:
        """The child engine's name, version and settings."""
        return dict(self._info)


def _serve(conn: Connection, model_dir: str, settings: dict[str, Any], cache_dir: str) -> None:
    """The child: start the engine, answer calls until told to stop (or the parent is gone), close it."""
    from faithfulness.engines import load_engine

    try:
        engine = load_engine(model_dir, settings, cache_dir)
    except BaseException as error:  # noqa: BLE001 - the parent re-raises it
        conn.send(("error", error))
        return
    conn.send(("ok", engine.info()))

    def call(message: tuple[str, list[Any], str]) -> tuple[list[Any], dict[str, int]]:
        kind, requests, desc = message
        return getattr(engine, kind)(requests, desc), dict(engine.counters)

    try:
        serve(conn, call)
    finally:
        engine.close()
