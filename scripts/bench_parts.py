"""Pieces of ``scripts/bench.py``: a recording engine, a memory monitor, the early-answering scaling probe."""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from faithfulness.engines import Completion, Engine, GenerationRequest, ScoreRequest
from faithfulness.engines.cached import stage_of
from faithfulness.perturbations import Trace, original
from faithfulness.prompts import PromptRenderer
from faithfulness.steps import split_steps
from faithfulness.suite.early_answering import early_answering


@dataclass
class Recorded:
    """Every request of one engine call, what came back, and how long the call took."""

    name: str
    requests: list[Any]
    results: list[Any]
    seconds: float
    cpu_seconds: float


def by_stage(calls: list[Recorded], stages: list[str]) -> list[Recorded]:
    """One record per pipeline stage, in ``stages`` order.

    The request store sends a stage to the engine in chunks (several calls) or not at all (nothing missing), so calls
    are joined by name.
    """
    out = []
    for name in stages:
        mine = [c for c in calls if stage_of(c.name) == name]
        out.append(
            Recorded(
                name,
                [r for c in mine for r in c.requests],
                [r for c in mine for r in c.results],
                sum(c.seconds for c in mine),
                sum(c.cpu_seconds for c in mine),
            )
        )
    return out


def tree_cpu_seconds() -> float:
    """CPU time (user + system) of this process and its live children: the engine core and its worker.

    On a shared machine wall time depends on what else runs; the CPU time a way spends does much less.
    """
    import psutil

    total = 0.0
    for proc in [psutil.Process(), *psutil.Process().children(recursive=True)]:
        try:
            times = proc.cpu_times()
            total += times.user + times.system
        except psutil.Error:  # a child that just exited
            pass
    return total


class RecordingEngine:
    """Wraps an engine and records each stage's requests, so the naive reference can replay them.

    The library is untouched: the pipeline sees an ordinary engine (same counters dict, same calls).
    """

    def __init__(self, inner: Engine) -> None:
        self.inner = inner
        self.counters = inner.counters  # the same dict: the pipeline's per-stage deltas stay exact
        self.calls: list[Recorded] = []

    def generate(self, requests: Sequence[GenerationRequest], desc: str) -> list[Completion]:
        """Forwards one batched call and records it."""
        clock, cpu = time.perf_counter(), tree_cpu_seconds()
        out = self.inner.generate(requests, desc)
        self.calls.append(Recorded(desc, list(requests), out, time.perf_counter() - clock, tree_cpu_seconds() - cpu))
        return out

    def score(self, requests: Sequence[ScoreRequest], desc: str) -> list[float]:
        """Forwards one batched scoring call and records it."""
        clock, cpu = time.perf_counter(), tree_cpu_seconds()
        out = self.inner.score(requests, desc)
        self.calls.append(Recorded(desc, list(requests), out, time.perf_counter() - clock, tree_cpu_seconds() - cpu))
        return out

    def close(self) -> None:
        """Closes the wrapped engine."""
        self.inner.close()

    def info(self) -> dict[str, Any]:
        """The wrapped engine's info."""
        return self.inner.info()


@dataclass
class MemoryMonitor:
    """Samples the resident memory of this process and all its children (the engine core) per phase."""

    interval: float = 0.25
    phase: str = "start"
    peaks: dict[str, float] = field(default_factory=dict)

    def __post_init__(self) -> None:
        import psutil

        self._proc = psutil.Process()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)
        self._thread.start()

    def _loop(self) -> None:
        import psutil

        while not self._stop.wait(self.interval):
            total = 0
            for proc in [self._proc, *self._proc.children(recursive=True)]:
                try:
                    total += proc.memory_info().rss
                except psutil.Error:  # a child that just exited
                    pass
            self.peaks[self.phase] = max(self.peaks.get(self.phase, 0.0), total / 2**30)

    def stop(self) -> dict[str, float]:
        """Stops sampling; peak GiB per phase."""
        self._stop.set()
        self._thread.join()
        return {k: round(v, 3) for k, v in self.peaks.items()}


def scaling_traces(cot_texts: list[str], lengths: list[int], reps: int) -> dict[int, list[Trace]]:
    """Synthetic CoTs of exactly ``length`` steps, made of the run's own CoT steps, ``reps`` per length."""
    pool = [s for text in cot_texts for s in split_steps(text) if s.strip()]
    # a model that writes no steps (a random test model) gets plain arithmetic sentences instead
    pool = pool or [f"Step {j}: {j} + {j + 1} = {2 * j + 1}.\n" for j in range(1, 64)]
    traces: dict[int, list[Trace]] = {}
    cursor = 0
    for length in lengths:
        traces[length] = []
        for rep in range(reps):
            steps = [pool[(cursor + j) % len(pool)] for j in range(length)]
            cursor += length
            steps = [s if s.endswith(("\n", " ")) else s + "\n" for s in steps]
            traces[length].append(Trace(10_000 * length + rep, 0, 0, "".join(steps), tuple(steps), "stop"))
    return traces


def early_answering_scaling(
    engine: Engine,
    renderer: PromptRenderer,
    questions: list[str],
    cot_texts: list[str],
    lengths: list[int],
    reps: int,
    answer: dict[str, Any],
) -> dict[str, Any]:
    """Times the forced-answer stage of early answering for CoTs of increasing length; fits t ∝ L^b.

    Each length gets fresh questions (no prefix left in the cache by an earlier call) and, like the
    pipeline, one batched call with the full CoTs first. With prefix sharing the tokens computed grow
    linearly with the CoT length (b ≈ 1); recomputing every truncated prefix makes them quadratic (b ≈ 2).
    """
    points = []
    q = 0
    for length, traces in scaling_traces(cot_texts, lengths, reps).items():
        prompts = []
        for trace in traces:
            question = questions[q % len(questions)]
            q += 1
            items = [*original(trace), *early_answering(trace)]
            prompts += [renderer.answer_prompt(question, p.cot) for p in items]
        prompts.sort(key=len, reverse=True)  # full CoTs first, as the pipeline puts originals first
        before, clock = dict(engine.counters), time.perf_counter()
        engine.generate([GenerationRequest(p, **answer) for p in prompts], desc=f"early answering, {length} steps")
        seconds = time.perf_counter() - clock
        delta = {k: engine.counters[k] - before[k] for k in before}
        steps = [len(t.steps) for t in traces]
        points.append(
            {
                "steps": float(np.mean(steps)),
                "seconds": seconds,
                "requests": delta["requests"],
                "prompt_tokens": delta["prompt_tokens"],
                "cached_tokens": delta["cached_tokens"],
                "generated_tokens": delta["generated_tokens"],
            }
        )
    x = np.log([p["steps"] for p in points])
    exponent = float(np.polyfit(x, np.log([p["seconds"] for p in points]), 1)[0])
    computed = float(np.polyfit(x, np.log([p["prompt_tokens"] - p["cached_tokens"] for p in points]), 1)[0])
    without_cache = float(np.polyfit(x, np.log([p["prompt_tokens"] for p in points]), 1)[0])
    return {
        "points": points,
        "reps": reps,
        "exponent_time": exponent,
        "exponent_computed_prompt_tokens": computed,
        "exponent_prompt_tokens_without_cache": without_cache,
    }


def cache_breakdown(table: Any, renderer: PromptRenderer, block_size: int | None) -> dict[str, Any]:
    """Forced-answer prefix-cache share per test, and the best share any order could reach.

    Every distinct forced-answer prompt ends with the answer suffix (end of turn, the answer question,
    the answer prefix) after a CoT no other prompt has, so at least those tokens are computed, plus on
    average half a KV block where the prompt leaves its shared prefix; an exact repeat (the re-ask) still
    computes its last token; and the filler tokens of each CoT's longest filler prompt (" ..." × m, m
    tokens) appear in no earlier prompt. That bounds the share from above whatever the ordering.
    """
    marker = "\x00COT\x00"
    suffix = renderer.answer_prompt("Q", marker).split(marker, 1)[1]
    suffix_tokens = len(renderer.tokenizer(suffix, add_special_tokens=False)["input_ids"])
    total = int(table["prompt_tokens"].sum())
    unique = int(table["prompt"].nunique())
    repeats = len(table) - unique
    filler = table[table["perturbation"] == "filler_tokens"]
    filler_tokens = int(filler.groupby(["item_id", "sample"])["level"].max().sum()) if len(filler) else 0
    block = block_size or 1
    per_test = table.groupby("perturbation")[["prompt_tokens", "cached_tokens"]].sum()
    counts = table.groupby("perturbation").size()
    return {
        "suffix_tokens": suffix_tokens,
        "prompts": len(table),
        "unique_prompts": unique,
        "first_filler_tokens": filler_tokens,
        "ceiling_any_block": 1 - (unique * suffix_tokens + repeats + filler_tokens) / total,
        "ceiling_this_block_size": 1 - (unique * (suffix_tokens + (block - 1) / 2) + repeats + filler_tokens) / total,
        "block_size": block_size,
        "per_test": {
            name: {
                "prompts": int(counts[name]),
                "cache_share": float(row.cached_tokens / row.prompt_tokens),
                "uncached_tokens_per_prompt": float((row.prompt_tokens - row.cached_tokens) / counts[name]),
            }
            for name, row in per_test.iterrows()
        },
    }
