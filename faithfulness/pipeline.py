"""The pipeline, top to bottom (each engine stage is one batched call):

task → CoTs → perturbations (pure) → model rewrites → regenerated CoT rests (and hinted questions'
fresh CoTs) → forced answers → answer scores → rows → summary.
"""

from __future__ import annotations

import os
import platform
import time
from contextlib import ExitStack
from dataclasses import asdict, dataclass, replace
from functools import partial
from pathlib import Path
from typing import Any, Callable

import numpy as np
import pandas as pd

from faithfulness import hints, metrics, registry
from faithfulness.engines import Engine, GenerationRequest, ScoreRequest, describe_engine, load_engine
from faithfulness.engines.cached import CachedEngine, LazyEngine
from faithfulness.errors import ConfigError
from faithfulness.models import ResolvedModel, resolve_model
from faithfulness.plots import write_figures
from faithfulness.perturbations import (
    MISTAKE_WRITERS, Item, Perturbed, Rewrite, Skipped, Trace, apply_rewrite, original, with_continuation,
)  # fmt: skip
from faithfulness.prompts import PromptRenderer, PromptTemplate
from faithfulness.provenance import results_dir, run_context, stable_seed
from faithfulness.results import build_rows, to_table, write_json, write_parquet
from faithfulness.steps import split_steps
from faithfulness.store import STORE_FILE, RequestStore, lock_folder, request_context
from faithfulness.tasks import Problem, Task, make_task


@dataclass
class RunOutput:
    """What a run leaves behind: its folder, table and summary."""

    out_dir: Path
    table: pd.DataFrame
    summary: dict[str, Any]


def run(cfg: dict[str, Any], engine: Engine | None = None) -> RunOutput:
    """Runs one configuration end to end and writes ``results.parquet`` and ``summary.json``.

    A rerun of the same config (after a kill or a Slurm requeue) takes every finished engine result
    from the folder's request store and computes only the rest (see ``faithfulness/store.py``).

    Args:
        cfg: The resolved config (see ``conf/config.yaml``).
        engine: An already started engine for ``cfg['model']`` (tests share one); started here if None.
    """
    with ExitStack() as held:  # the results folder's lock and request store, released however the run ends
        return _run(cfg, engine, held)


def _run(cfg: dict[str, Any], engine: Engine | None, held: ExitStack) -> RunOutput:
    timings: dict[str, float] = {}
    clock = time.perf_counter()
    task, problems = build_task(cfg)
    model = resolve_model(cfg["model"], cfg["cache_dir"])
    timings["model_prepare_s"] = time.perf_counter() - clock
    renderer = build_renderer(cfg, model, task)
    out_dir = held.enter_context(lock_folder(results_dir(cfg)))  # after validation: bad input makes no folder
    store = held.enter_context(RequestStore(out_dir / STORE_FILE))
    own_engine = engine is None
    if engine is None:  # started at the first request the store lacks: none when all engine work is stored
        engine = LazyEngine(partial(start_engine, cfg, model), describe_engine(dict(cfg["engine"])), timings)
    engine = CachedEngine(engine, store, request_context(model, engine.info()), cfg["store_chunk"])
    stages: dict[str, dict[str, float]] = {}
    question = {p.item_id: p.question for p in problems}
    problem = {p.item_id: p for p in problems}

    # 1. chains of thought
    keys = [(p.item_id, s) for p in problems for s in range(cfg["samples"])]
    cot_requests = [
        GenerationRequest(renderer.cot_prompt(question[i]), stop=tuple(renderer.cot_stop()), seed=stable_seed(cfg["seed"], i, s), **cfg["sampling"])
        for i, s in keys
    ]  # fmt: skip
    cots = _stage(engine, cot_requests, "chains of thought", stages)
    traces = [
        Trace(i, s, req.seed or 0, c.text, tuple(split_steps(c.text)), c.finish_reason)
        for (i, s), req, c in zip(keys, cot_requests, cots)
    ]

    # 2. perturbations: pure functions of each trace
    filler = filler_lengths([c.generated_tokens for c in cots], cfg["filler"]["points"])
    perturb = build_perturbations(cfg, filler, problems, task)
    items = [(t, item) for t in traces for fn in [original, *perturb] for item in fn(t)]

    # 3. model-written rewrites (mistakes, paraphrases)
    rewrites = [(t, r) for t, r in items if isinstance(r, Rewrite)]
    written = _stage(engine, [rewrite_request(renderer, r, cfg) for _, r in rewrites], "rewrites", stages)
    applied = {id(r): apply_rewrite(r, w.text) for (_, r), w in zip(rewrites, written)}
    items = [(t, applied.get(id(i), i)) for t, i in items]
    skipped = [{"item_id": t.item_id, "sample": t.sample, **asdict(i)} for t, i in items if isinstance(i, Skipped)]
    # originals first: every other prompt of a trace extends a prefix of its original, so once the
    # originals are computed (a few engine steps) the rest read their prefixes from the cache
    perturbed = sorted(((t, p) for t, p in items if isinstance(p, Perturbed)), key=lambda tp: tp[1].perturbation != "original")

    # 4. the subject model regenerates the rest of every corrupted or paraphrased CoT, and writes a
    # fresh one for every hinted question (its verbalisation verdict read right after)
    todo = [n for n, (_, p) in enumerate(perturbed) if p.regenerate]
    rests = _stage(engine, [regenerate_request(renderer, question, *perturbed[n], cfg) for n in todo], "regenerations", stages)
    templates = {t.name: t for t in hint_templates(cfg, task)}
    for n, rest in zip(todo, rests):
        perturbed[n] = (perturbed[n][0], hints.mark_verbalised(with_continuation(perturbed[n][1], rest.text), templates))
    if templates and cfg["biased_context"]["judge"]:
        perturbed = judge_hints(engine, renderer, perturbed, cfg, stages)

    # 5. forced answers, and 6. the probability of the original and the correct answer
    settings = answer_settings(cfg, task)
    answer_requests = [GenerationRequest(renderer.answer_prompt(asked(question, t, p), p.cot), **settings) for t, p in perturbed]
    answers = _stage(engine, answer_requests, "forced answers", stages)
    parsed = [task.parse_answer(a.text, problem[t.item_id]) for (t, _), a in zip(perturbed, answers)]
    reference = {(t.item_id, t.sample): v for (t, p), v in zip(perturbed, parsed) if p.perturbation == "original"}
    to_score = [task.continuations(problem[t.item_id], [reference[(t.item_id, t.sample)], problem[t.item_id].answer,
                                                        p.hint.target if p.hint else problem[t.item_id].target])
                for t, p in perturbed]  # fmt: skip
    scores = score_answers(engine, answer_requests, to_score, stages) if cfg["score_answers"] else None

    context = run_context(cfg, task, model, renderer, engine)
    if own_engine:
        engine.close()
    rows = build_rows(task, problems, perturbed, answer_requests, answers, parsed, reference, scores, context)
    try:
        table = to_table(rows)
    except Exception:
        write_json(rows, out_dir / "rows.unvalidated.json")  # keep the engine's work for inspection
        raise
    write_parquet(table, out_dir / "results.parquet")  # first: everything below is derived from it
    write_json(cfg, out_dir / "config.json")
    summary = {
        "run": {**context, "results_dir": str(out_dir), "n_problems": len(problems), "samples": cfg["samples"],
                "host": platform.node(), "pid": os.getpid()},  # jobs of a sweep that shared an engine share a pid
        "metrics": metrics.summarise(table, cfg["bootstrap_resamples"], cfg["seed"]),
        "skipped": skipped,
        "filler_lengths": filler,
        "stages": stages,
        "timings": timings,
    }
    summary["figures"] = [str(p) for p in write_figures(table, summary, out_dir)]
    write_json(summary, out_dir / "summary.json")
    return RunOutput(out_dir, table, summary)


def start_engine(cfg: dict[str, Any], model: ResolvedModel | None = None) -> Engine:
    """Starts the engine for ``cfg['model']`` with the ``engine`` settings (resolving the model if needed)."""
    model = model or resolve_model(cfg["model"], cfg["cache_dir"])
    return load_engine(model.path, dict(cfg["engine"]), cfg["cache_dir"])


def _stage(engine: Engine, requests: list[Any], name: str, stages: dict[str, dict[str, float]], score: bool = False) -> list[Any]:
    """One batched engine pass (``generate``, or ``score`` for ScoreRequests), its counts kept in ``stages[name]``."""
    clock, before = time.perf_counter(), dict(engine.counters)
    results = engine.score(requests, desc=name) if score else engine.generate(requests, desc=name)
    stages[name] = {k: engine.counters[k] - before[k] for k in before} | {"seconds": time.perf_counter() - clock}
    return results


def build_task(cfg: dict[str, Any]) -> tuple[Task, list[Problem]]:
    """Validates the task and test settings before anything slow starts."""
    for key, low in (("seed", 0), ("samples", 1)):
        value = cfg[key]
        if isinstance(value, bool) or not isinstance(value, int) or value < low:
            raise ConfigError(f"{key}={value!r} is not allowed: must be a whole number ≥ {low}")
    task = make_task(cfg)
    points = cfg.get("cut_points")
    if points is not None and (isinstance(points, bool) or not isinstance(points, int) or points < 2):
        raise ConfigError(f"cut_points={points!r} is not allowed: null (every step) or a whole number ≥ 2")
    unknown = [name for name in cfg["perturbations"] if name not in registry.choosable()]
    if unknown:
        raise ConfigError(f"perturbations={unknown} is not allowed: choose from {registry.choosable()}")
    writer = cfg["mistakes"]["writer"]
    if writer not in MISTAKE_WRITERS:
        raise ConfigError(f"mistakes.writer={writer!r} is not allowed: choose one of {list(MISTAKE_WRITERS)}")
    if cfg["mistakes"].get("model") not in (None, cfg["model"]["name"]):
        # vLLM frees no engine inside a process, so a second model needs a process of its own
        raise ConfigError(f"mistakes.model={cfg['mistakes']['model']!r} is not allowed yet: only null (the subject model) "
                          "writes mistakes in this version")  # fmt: skip
    hint_templates(cfg, task)  # a bad hint is an error before anything slow starts
    problems = task.items(cfg["seed"], cfg["n"])
    return task, hints.with_targets(problems, cfg["seed"]) if "biased_context" in cfg["perturbations"] else problems


def hint_templates(cfg: dict[str, Any], task: Task) -> list[hints.HintTemplate]:
    """The configured hints when ``biased_context`` runs (checked against the task), else none."""
    if "biased_context" not in cfg["perturbations"]:
        return []
    block = cfg["biased_context"]
    if block["judge"] and not all(key in block["judge_prompt"] for key in ("{hint}", "{cot}")):
        raise ConfigError("biased_context.judge_prompt must contain '{hint}' and '{cot}'")
    return hints.hint_templates(block, task.answer_type, task.name)


def build_renderer(cfg: dict[str, Any], model: ResolvedModel, task: Task) -> PromptRenderer:
    """Loads the model's tokenizer and the configured prompt template (its answer prefix completed by the task's)."""
    from transformers import AutoTokenizer

    fmt = cfg["prompt_format"]
    if fmt not in cfg["prompts"]:
        raise ConfigError(f"prompt_format={fmt!r} is not allowed: choose one of {sorted(cfg['prompts'])}")
    revision = None if model.revision == "local" or len(model.revision) == 64 else model.revision
    tokenizer = AutoTokenizer.from_pretrained(model.path, revision=revision)
    strings = dict(cfg["prompts"][fmt])
    strings["answer_prefix"] += task.answer_suffix  # " (" for option letters: the next token is the letter
    return PromptRenderer(PromptTemplate(format=fmt, **strings), tokenizer)


def answer_settings(cfg: dict[str, Any], task: Task) -> dict[str, Any]:
    """The forced answers' generation settings: the config's, at most the task's token limit."""
    settings = dict(cfg["answer"])
    if task.answer_max_tokens is not None:
        settings["max_tokens"] = min(settings["max_tokens"], task.answer_max_tokens)
    return settings


def filler_lengths(cot_tokens: list[int], points: int) -> list[int]:
    """m = 0 .. the longest CoT's token length, ``points`` evenly spaced values (§3.3)."""
    longest = max(cot_tokens, default=0)
    return sorted({int(round(x)) for x in np.linspace(0, longest, max(points, 2))})


def build_perturbations(cfg: dict[str, Any], filler: list[int], problems: list[Problem], task: Task) -> list[Callable[[Trace], list[Item]]]:
    """Binds each configured test (faithfulness/registry.py) to its settings; randomness is seeded per trace."""
    settings = registry.Settings(cfg, filler, {p.item_id: p for p in problems}, hint_templates(cfg, task))
    return [registry.lookup(name).bind(settings) for name in cfg["perturbations"]]


def asked(question: dict[int, str], trace: Trace, perturbed: Perturbed) -> str:
    """The question a perturbed CoT answers: the problem's own, or its hinted version."""
    return perturbed.hint.question if perturbed.hint else question[trace.item_id]


def rewrite_request(renderer: PromptRenderer, rewrite: Rewrite, cfg: dict[str, Any]) -> GenerationRequest:
    """Asks the subject model to rewrite a step with a mistake, or to paraphrase steps 1..k."""
    template = cfg["mistakes"]["prompt"] if rewrite.kind == "mistake" else cfg["paraphrase"]["prompt"]
    stop = ("\n",) if rewrite.kind == "mistake" else ()  # a mistaken step is one line
    return GenerationRequest(renderer.instruction_prompt(template.replace("{text}", rewrite.text.strip())),
                             max_tokens=cfg["rewrite_max_tokens"], stop=stop)  # fmt: skip


def regenerate_request(renderer: PromptRenderer, question: dict[int, str], trace: Trace, perturbed: Perturbed, cfg: dict[str, Any]) -> GenerationRequest:
    """Continues a perturbed CoT prefix with the CoT sampling settings and a seed of its own."""
    hint = (perturbed.hint.kind, perturbed.hint.target) if perturbed.hint else ()  # each hinted question its own seed
    seed = stable_seed(cfg["seed"], trace.item_id, trace.sample, perturbed.perturbation, perturbed.level, *hint)
    return GenerationRequest(renderer.continuation_prompt(asked(question, trace, perturbed), perturbed.cot),
                             stop=tuple(renderer.cot_stop()), seed=seed, **cfg["sampling"])  # fmt: skip


def score_answers(engine: Engine, answer_requests: list[GenerationRequest], to_score: list[dict[str, str]], stages: dict[str, dict[str, float]]) -> list[dict[str, float]]:
    """Teacher-forced log P(answer | answer prompt) for each answer → continuation of each prompt, in one pass.

    Addition scores " <original answer>" and " <correct answer>"; multiple choice every option letter.
    """
    unique: dict[tuple[str, str], int] = {}
    for request, wanted in zip(answer_requests, to_score):
        for text in wanted.values():
            unique.setdefault((request.prompt, text), len(unique))
    logprobs = _stage(engine, [ScoreRequest(prompt, text) for prompt, text in unique], "answer scores", stages, score=True)
    return [{answer: logprobs[unique[(r.prompt, text)]] for answer, text in wanted.items()} for r, wanted in zip(answer_requests, to_score)]


def judge_hints(engine: Engine, renderer: PromptRenderer, perturbed: list[tuple[Trace, Perturbed]], cfg: dict[str, Any],
                stages: dict[str, dict[str, float]]) -> list[tuple[Trace, Perturbed]]:  # fmt: skip
    """Asks the judge (the subject model, with the fixed ``biased_context.judge_prompt``) whether each hinted CoT mentions its hint."""
    todo = [n for n, (_, p) in enumerate(perturbed) if p.hint and p.level == 1]
    prompt = cfg["biased_context"]["judge_prompt"]
    requests = [GenerationRequest(renderer.instruction_prompt(hints.judge_prompt(prompt, perturbed[n][1])), max_tokens=3) for n in todo]
    out = list(perturbed)
    for n, verdict in zip(todo, _stage(engine, requests, "hint judge", stages)):
        trace, p = out[n]
        out[n] = (trace, replace(p, hint=replace(p.hint, judged=hints.parse_judgement(verdict.text))))  # type: ignore[arg-type]
    return out
