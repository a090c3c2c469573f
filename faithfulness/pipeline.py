"""The pipeline, top to bottom; each engine stage is one batched call.

task → CoTs → perturbations (pure) → model rewrites → regenerated CoT rests (and hinted questions'
fresh CoTs) → forced answers → answer scores → rows → summary.
"""

from __future__ import annotations

import os
import platform
import time
from collections import Counter
from contextlib import ExitStack
from dataclasses import asdict, dataclass, replace
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

import pandas as pd

from faithfulness import console, hints, registry
from faithfulness.answers import read_answers, view
from faithfulness.engines import Engine, GenerationRequest, ScoreRequest, describe_engine, load_engine
from faithfulness.engines.cached import CachedEngine, LazyEngine
from faithfulness.engines.process import ProcessEngine
from faithfulness.filler import longest_per_question, plan, set_fractions
from faithfulness.models import ResolvedModel, resolve_model
from faithfulness.perturbations import (
    Item,
    Perturbed,
    Rewrite,
    Skipped,
    Trace,
    apply_rewrite,
    original,
    with_continuation,
)
from faithfulness.plots import write_figures
from faithfulness.prompts import PromptRenderer, PromptTemplate
from faithfulness.provenance import results_dir, run_context, stable_seed
from faithfulness.reasoning import make_renderer, think_tags, thinking_cut
from faithfulness.results import build_rows, to_table, write_json, write_parquet
from faithfulness.steps import split_steps
from faithfulness.store import STORE_FILE, RequestStore, lock_folder, request_context
from faithfulness.summaries import summarise_run, summary_options
from faithfulness.tasks import Problem, Task, make_task
from faithfulness.writer import Writer, build_writer

if TYPE_CHECKING:
    from faithfulness.config.sections import ModelSpec, RunConfig


@dataclass
class RunOutput:
    """What a run leaves behind: its folder, table and summary."""

    out_dir: Path
    table: pd.DataFrame
    summary: dict[str, Any]


def run(config: RunConfig, engine: Engine | None = None) -> RunOutput:
    """Runs one configuration end to end and writes ``results.parquet`` and ``summary.json``.

    A rerun of the same config (after a kill or a Slurm requeue) takes every finished engine result
    from the folder's request store and computes only the rest (see ``faithfulness/store.py``).

    Args:
        config: The run's config, checked (``faithfulness.config.rules.load``, before any folder or engine).
        engine: An already started engine for ``config.model`` (tests share one); started here if None.
    """
    with ExitStack() as held:  # the results folder's lock and request store, released however the run ends
        return _run(config, engine, held)


def _run(cfg: RunConfig, engine: Engine | None, held: ExitStack) -> RunOutput:
    timings: dict[str, float] = {}
    clock = time.perf_counter()
    task, problems = build_task(cfg)
    model = resolve_model(cfg.model, cfg.cache_dir)
    timings["model_prepare_s"] = time.perf_counter() - clock
    renderer = build_renderer(cfg, cfg.model, cfg.prompt_format, model, task)
    out_dir = held.enter_context(lock_folder(results_dir(cfg)))  # after validation: bad input makes no folder
    store = held.enter_context(RequestStore(out_dir / STORE_FILE))
    held.enter_context(console.engine_log(out_dir / "engine.log", cfg.verbose))  # vLLM's output, unless verbose
    own_engine = engine is None
    writer = build_writer(cfg, store, timings, lambda spec, fmt, wmodel: build_renderer(cfg, spec, fmt, wmodel, task))
    if engine is None:  # started at the first request the store lacks: none when all engine work is stored
        # with a separate mistake writer the subject's engine lives in a process, closed while the writer works
        launch = partial(start_process_engine if writer else start_engine, cfg, model)
        engine = LazyEngine(launch, describe_engine(asdict(cfg.engine)), timings)
        if writer:  # the writer's engine starts only for rewrites the store lacks; the subject's closes first
            writer.engine.inner.before_start = engine.suspend  # type: ignore[attr-defined]
    engine = CachedEngine(engine, store, request_context(model, engine.info()), cfg.store_chunk)
    stages: dict[str, dict[str, float]] = {}
    question = {p.item_id: p.question for p in problems}
    problem = {p.item_id: p for p in problems}

    # 1. chains of thought
    keys = [(p.item_id, s) for p in problems for s in range(cfg.samples)]
    cot_requests = [
        GenerationRequest(
            renderer.cot_prompt(question[i]),
            stop=tuple(renderer.cot_stop()),
            seed=stable_seed(cfg.seed, i, s),
            **asdict(cfg.sampling),
        )
        for i, s in keys
    ]
    cots = _stage(engine, cot_requests, "chains of thought", stages)
    traces = [
        Trace(i, s, req.seed or 0, c.text, tuple(split_steps(c.text)), c.finish_reason)
        for (i, s), req, c in zip(keys, cot_requests, cots)
    ]
    tags = think_tags(cfg.model)  # reasoning models: the CoT is the thinking, cut if never closed
    cut = {(t.item_id, t.sample): thinking_cut(c, tags) for t, c in zip(traces, cots)}

    # 2. perturbations: pure functions of each trace
    longest = longest_per_question([t.item_id for t in traces], [c.generated_tokens for c in cots])
    filler = plan(cfg, renderer, problems[0].question, longest)  # the string is checked against the tokenizer
    perturb = build_perturbations(cfg, filler, problems, task)
    items = [(t, item) for t in traces for fn in [original, *perturb] for item in fn(t)]

    # 3. model-written rewrites (mistakes, paraphrases)
    rewrites = [(t, r) for t, r in items if isinstance(r, Rewrite)]
    written = model_rewrites(engine, writer, renderer, [r for _, r in rewrites], cfg, stages)
    applied = {id(r): apply_rewrite(r, w.text) for (_, r), w in zip(rewrites, written)}
    items = [(t, applied.get(id(i), i)) for t, i in items]
    skipped = [{"item_id": t.item_id, "sample": t.sample, **asdict(i)} for t, i in items if isinstance(i, Skipped)]
    # originals first: every other prompt of a trace extends a prefix of its original, so once the
    # originals are computed (a few engine steps) the rest read their prefixes from the cache
    perturbed = sorted(
        ((t, p) for t, p in items if isinstance(p, Perturbed)), key=lambda tp: tp[1].perturbation != "original"
    )

    # 4. the subject model regenerates the rest of every corrupted or paraphrased CoT, and writes a
    # fresh one for every hinted question (its verbalisation verdict read right after)
    todo = [n for n, (_, p) in enumerate(perturbed) if p.regenerate]
    rests = _stage(
        engine, [regenerate_request(renderer, question, *perturbed[n], cfg) for n in todo], "regenerations", stages
    )
    templates = {t.name: t for t in hint_templates(cfg, task)}
    for n, rest in zip(todo, rests):
        perturbed[n] = (
            perturbed[n][0],
            hints.mark_verbalised(with_continuation(perturbed[n][1], rest.text), templates),
        )
    rest_cut = {n: thinking_cut(rest, tags) for n, rest in zip(todo, rests)}
    # per row: its CoT's thinking, or the regenerated rest of it, never closed (None: not a reasoning model);
    # a hinted question's CoT is written afresh, so only its own thinking counts
    row_cut = [
        None if tags is None else bool((p.hint is None and cut[(t.item_id, t.sample)]) or rest_cut.get(n))
        for n, (t, p) in enumerate(perturbed)
    ]
    if templates and cfg.biased_context and cfg.biased_context.judge:
        perturbed = judge_hints(engine, renderer, perturbed, cfg, stages)

    # 5. forced answers, and 6. the probability of the original, the correct and the target answer
    settings = answer_settings(cfg, task)

    def scored(t: Trace, p: Perturbed, *answers: str | None) -> dict[str, str]:
        """What a forced answer is scored on: ``answers``, the correct answer and the bias target (or every option)."""
        item = problem[t.item_id]
        return task.continuations(item, [*answers, item.answer, p.hint.target if p.hint else item.target])

    # what will be scored and is known before the answers (all but the original answer): the engine keeps
    # those tokens' logprobs while it generates, so many scores need no request of their own
    known = [tuple(scored(t, p).values()) if cfg.score_answers else () for t, p in perturbed]
    answer_requests = [
        GenerationRequest(renderer.answer_prompt(asked(question, t, p), p.cot), score=s, **settings)
        for (t, p), s in zip(perturbed, known)
    ]
    # no CoT, early answering at k = 0 and filler at m = 0 are one prompt, and no filler prompt depends on the
    # CoT: each is asked once per question and reported under each row. Other repeats (the re-ask of the
    # full CoT) stay requests of their own: they measure batch noise.
    shared = [
        (not p.cot or registry.lookup(p.perturbation).cot_free) and r.temperature == 0
        for (_, p), r in zip(perturbed, answer_requests)
    ]
    answers = _stage_once(engine, answer_requests, shared, "forced answers", stages)
    readings = [read_answers(task, problem[t.item_id], a.text) for (t, _), a in zip(perturbed, answers)]
    reference = {(t.item_id, t.sample): r for (t, p), r in zip(perturbed, readings) if p.perturbation == "original"}
    to_score = [scored(t, p, *reference[(t.item_id, t.sample)].values()) for t, p in perturbed]
    scores = score_answers(engine, answer_requests, to_score, stages) if cfg.score_answers else None

    context = run_context(cfg, task, model, renderer, engine)
    if own_engine:
        engine.close()
    rows = build_rows(
        task, problems, perturbed, answer_requests, answers, readings, reference, scores, context, row_cut
    )
    if cfg.filler.mode == "per_question":
        set_fractions(rows, longest)
    try:
        table = to_table(rows)
    except Exception:
        write_json(rows, out_dir / "rows.unvalidated.json")  # keep the engine's work for inspection
        raise
    write_parquet(table, out_dir / "results.parquet")  # first: everything below is derived from it
    write_json(cfg.plain, out_dir / "config.json")
    summary = {
        "run": {
            **context,
            "results_dir": str(out_dir),
            "n_problems": len(problems),
            "samples": cfg.samples,
            "host": platform.node(),
            "pid": os.getpid(),
        },  # jobs of a sweep that shared an engine share a pid
        **summarise_run(table, summary_options(cfg)),
        "skipped": skipped,
        "mistake_writer": writer.summary() if writer else None,
        "filler_lengths": filler["lengths"],
        "filler_string": filler["string"],
        "stages": stages,
        "timings": timings,
    }
    summary["figures"] = [str(p) for p in write_figures(view(table, cfg.answer.extract), summary, out_dir)]
    write_json(summary, out_dir / "summary.json")
    return RunOutput(out_dir, table, summary)


def model_rewrites(
    engine: CachedEngine,
    writer: Writer | None,
    renderer: PromptRenderer,
    rewrites: list[Rewrite],
    cfg: RunConfig,
    stages: dict[str, dict[str, float]],
) -> list[Any]:
    """Paraphrases by the subject model; mistakes by the writer if there is one, else by the subject."""
    theirs = [writer is not None and r.kind == "mistake" for r in rewrites]
    out: list[Any] = [None] * len(rewrites)
    mine = [n for n, t in enumerate(theirs) if not t]
    for n, c in zip(
        mine, _stage(engine, [rewrite_request(renderer, rewrites[n], cfg) for n in mine], "rewrites", stages)
    ):
        out[n] = c
    if writer is not None and any(theirs):
        todo = [n for n, t in enumerate(theirs) if t]
        requests = [rewrite_request(writer.renderer, rewrites[n], cfg) for n in todo]
        for n, c in zip(todo, _stage(writer.engine, requests, "mistakes by the writer", stages)):
            out[n] = c
        writer.engine.inner.suspend()  # type: ignore[attr-defined]  # the subject's engine starts again after it
    return out


def start_process_engine(cfg: RunConfig, model: ResolvedModel) -> Engine:
    """The subject's engine in a process of its own (closed while a separate mistake writer works)."""
    return ProcessEngine(model.path, asdict(cfg.engine), cfg.cache_dir)


def start_engine(cfg: RunConfig, model: ResolvedModel | None = None) -> Engine:
    """Starts the engine for ``cfg.model`` with the ``engine`` settings (resolving the model if needed)."""
    model = model or resolve_model(cfg.model, cfg.cache_dir)
    return load_engine(model.path, asdict(cfg.engine), cfg.cache_dir)


def _stage(
    engine: Engine, requests: list[Any], name: str, stages: dict[str, dict[str, float]], score: bool = False
) -> list[Any]:
    """One batched engine pass (``generate``, or ``score`` for ScoreRequests), its counts kept in ``stages[name]``.

    ``seconds`` leaves out an engine start the pass caused (the engine starts at the first request the
    store lacks): that time is ``timings['engine_start_s']``, and stage times are compared with the engine floor.
    """
    clock, before = time.perf_counter(), dict(engine.counters)
    results = engine.score(requests, desc=name) if score else engine.generate(requests, desc=name)
    stages[name] = {k: engine.counters[k] - before[k] for k in before}
    stages[name]["seconds"] = time.perf_counter() - clock - stages[name].pop("start_s", 0.0)
    if not score and stages[name]["calls"] and not stages[name].get("from_store"):
        # how many requests generated how many tokens: the engine floor's batch thins as they finish
        stages[name]["generated_lengths"] = {
            str(k): v for k, v in sorted(Counter(c.generated_tokens for c in results).items())
        }
    return results


def _stage_once(
    engine: Engine, requests: list[GenerationRequest], share: list[bool], name: str, stages: dict[str, dict[str, float]]
) -> list[Any]:
    """:func:`_stage` computing the requests marked in ``share`` once per distinct request.

    The copies get its result; ``stages[name]['shared']`` counts them).
    """
    keys: list[object] = [
        (r.prompt, r.max_tokens, r.temperature, r.top_p, r.seed, tuple(r.stop)) if s else n
        for n, (r, s) in enumerate(zip(requests, share))
    ]
    unique: dict[object, GenerationRequest] = {}
    for key, request in zip(keys, requests):
        unique.setdefault(key, request)
    results = _stage(engine, list(unique.values()), name, stages)
    stages[name]["shared"] = len(requests) - len(unique)
    index = {key: n for n, key in enumerate(unique)}
    return [results[index[key]] for key in keys]


def build_task(cfg: RunConfig) -> tuple[Task, list[Problem]]:
    """Builds the task (which checks its own keys; ``rules.load`` checked the rest) and its problems."""
    task = make_task(cfg)
    problems = task.items(cfg.seed, cfg.n)
    return task, hints.with_targets(problems, cfg.seed) if cfg.runs("biased_context") else problems


def hint_templates(cfg: RunConfig, task: Task) -> list[hints.HintTemplate]:
    """The configured hints when ``biased_context`` runs (checked against the task), else none."""
    if not cfg.runs("biased_context") or cfg.biased_context is None:
        return []
    return hints.hint_templates(cfg.biased_context, task.answer_type, task.name)


def build_renderer(cfg: RunConfig, spec: ModelSpec, fmt: str, model: ResolvedModel, task: Task) -> PromptRenderer:
    """Loads the model's tokenizer and prompt format ``fmt`` (its answer prefix completed by the task's)."""
    from transformers import AutoTokenizer

    revision = None if model.revision == "local" or len(model.revision) == 64 else model.revision
    tokenizer = AutoTokenizer.from_pretrained(model.path, revision=revision)
    strings = asdict(cfg.prompts[fmt])
    strings["answer_prefix"] += task.answer_suffix  # " (" for option letters: the next token is the letter
    return make_renderer(spec, PromptTemplate(format=fmt, **strings), tokenizer)


def answer_settings(cfg: RunConfig, task: Task) -> dict[str, Any]:
    """The forced answers' generation settings: the config's, at most the task's token limit."""
    settings = cfg.answer.generation()
    if task.answer_max_tokens is not None:
        settings["max_tokens"] = min(settings["max_tokens"], task.answer_max_tokens)
    return settings


def build_perturbations(
    cfg: RunConfig, filler: dict[str, Any], problems: list[Problem], task: Task
) -> list[Callable[[Trace], list[Item]]]:
    """Binds each configured test (faithfulness/registry.py) to its settings; randomness is seeded per trace."""
    settings = registry.Settings(cfg, filler, {p.item_id: p for p in problems}, hint_templates(cfg, task))
    return [registry.lookup(name).bind(settings) for name in cfg.perturbations]


def asked(question: dict[int, str], trace: Trace, perturbed: Perturbed) -> str:
    """The question a perturbed CoT answers: the problem's own, or its hinted version."""
    return perturbed.hint.question if perturbed.hint else question[trace.item_id]


def rewrite_request(renderer: PromptRenderer, rewrite: Rewrite, cfg: RunConfig) -> GenerationRequest:
    """Asks the subject model to rewrite a step with a mistake, or to paraphrase steps 1..k."""
    template = cfg.mistakes.prompt if rewrite.kind == "mistake" else cfg.paraphrase.prompt
    stop = (("\n",) if rewrite.kind == "mistake" else ()) + tuple(
        renderer.rewrite_stop()
    )  # a mistaken step is one line
    return GenerationRequest(
        renderer.instruction_prompt(template.replace("{text}", rewrite.text.strip())),
        max_tokens=cfg.rewrite_max_tokens,
        stop=stop,
    )


def regenerate_request(
    renderer: PromptRenderer, question: dict[int, str], trace: Trace, perturbed: Perturbed, cfg: RunConfig
) -> GenerationRequest:
    """Continues a perturbed CoT prefix with the CoT sampling settings and a seed of its own."""
    hint = (perturbed.hint.kind, perturbed.hint.target) if perturbed.hint else ()  # each hinted question its own seed
    seed = stable_seed(cfg.seed, trace.item_id, trace.sample, perturbed.perturbation, perturbed.level, *hint)
    return GenerationRequest(
        renderer.continuation_prompt(asked(question, trace, perturbed), perturbed.cot),
        stop=tuple(renderer.cot_stop()),
        seed=seed,
        **asdict(cfg.sampling),
    )


def score_answers(
    engine: Engine,
    answer_requests: list[GenerationRequest],
    to_score: list[dict[str, str]],
    stages: dict[str, dict[str, float]],
) -> list[dict[str, float]]:
    """Teacher-forced log P(answer | answer prompt) for each answer → continuation of each prompt, in one pass.

    Addition scores " <original answer>" and " <correct answer>"; multiple choice every option letter.
    """
    unique: dict[tuple[str, str], int] = {}
    for request, wanted in zip(answer_requests, to_score):
        for text in wanted.values():
            unique.setdefault((request.prompt, text), len(unique))
    logprobs = _stage(
        engine, [ScoreRequest(prompt, text) for prompt, text in unique], "answer scores", stages, score=True
    )
    return [
        {answer: logprobs[unique[(r.prompt, text)]] for answer, text in wanted.items()}
        for r, wanted in zip(answer_requests, to_score)
    ]


def judge_hints(
    engine: Engine,
    renderer: PromptRenderer,
    perturbed: list[tuple[Trace, Perturbed]],
    cfg: RunConfig,
    stages: dict[str, dict[str, float]],
) -> list[tuple[Trace, Perturbed]]:
    """Asks the judge (the subject, with ``biased_context.judge_prompt``) whether each hinted CoT mentions its hint."""
    todo = [n for n, (_, p) in enumerate(perturbed) if p.hint and p.level == 1]
    prompt = cfg.biased_context.judge_prompt if cfg.biased_context else ""  # rules.load: set when it runs
    requests = [
        GenerationRequest(renderer.instruction_prompt(hints.judge_prompt(prompt, perturbed[n][1])), max_tokens=3)
        for n in todo
    ]
    out = list(perturbed)
    for n, verdict in zip(todo, _stage(engine, requests, "hint judge", stages)):
        trace, p = out[n]
        out[n] = (trace, replace(p, hint=replace(p.hint, judged=hints.parse_judgement(verdict.text))))  # type: ignore[arg-type]
    return out
