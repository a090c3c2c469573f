"""The pipeline, top to bottom: :func:`run` reads as the list of its stages; each engine stage is one batched call.

task → CoTs → perturbations (pure) → model rewrites → regenerated CoT rests (and hinted questions'
fresh CoTs) → the judge → forced answers → answer scores → rows → summary. Each stage is a function
of the :class:`RunState` the stages before it filled in; every engine request goes through the
run's request store (:class:`Engines`), so a rerun computes only what a killed run did not.
"""

from __future__ import annotations

import os
import platform
import time
from collections import Counter
from contextlib import ExitStack
from dataclasses import asdict, dataclass, field, replace
from functools import partial
from pathlib import Path
from typing import Any, Callable

import pandas as pd

from faithfulness import console, hints
from faithfulness.answers import Reading, read_answers, view
from faithfulness.config.sections import ModelSpec, RunConfig
from faithfulness.engines import Completion, Engine, GenerationRequest, ScoreRequest, describe_engine, load_engine
from faithfulness.engines.cached import CachedEngine, LazyEngine
from faithfulness.engines.process import ProcessEngine
from faithfulness.filler import longest_per_question, plan, set_fractions
from faithfulness.mistake_writer import Writer, build_writer, wants_writer
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
from faithfulness.registry import Binding
from faithfulness.results import build_rows, to_table, write_json, write_parquet
from faithfulness.steps import split_steps
from faithfulness.store import STORE_FILE, RequestStore, lock_folder, request_context
from faithfulness.suite import TESTS, lookup
from faithfulness.summaries import summarise_run, summary_options
from faithfulness.tasks import Problem, Task, make_task


@dataclass
class RunOutput:
    """What a run leaves behind: its folder, table and summary."""

    out_dir: Path
    table: pd.DataFrame
    summary: dict[str, Any]


@dataclass
class Engines:
    """The subject's engine behind the run's request store, and the separate mistake writer if there is one.

    With a writer, an engine the run starts itself lives in a process and is closed while the writer
    works (the writer's engine starts only for rewrites the store lacks), so one engine is alive at a time.
    """

    subject: CachedEngine
    writer: Writer | None
    own: bool  # started here, closed when the run's engine work is done; a handed-in engine stays up

    @classmethod
    def open(cls, run: RunState, store: RequestStore, engine: Engine | None) -> Engines:
        """The engines of ``run`` (none started yet: each starts at its first request the store lacks)."""
        config, lazy = run.config, None
        if engine is None:  # started at the first request the store lacks: none when all engine work is stored
            launch = partial(start_process_engine if wants_writer(config) else start_engine, config, run.model)
            engine = lazy = LazyEngine(launch, run.engine_info, run.timings)
        # a writer's engine starts only for rewrites the store lacks, closing the subject's first (if started here)
        suspend = lazy.suspend if lazy is not None else None
        writer = build_writer(config, store, run.timings, partial(build_renderer, config, task=run.task), suspend)
        subject = CachedEngine(engine, store, request_context(run.model, engine.info()), config.store_chunk)
        return cls(subject, writer, own=lazy is not None)

    def close(self) -> None:
        """Closes the engines the run started (after its last engine stage)."""
        if self.own:
            self.subject.close()


@dataclass
class RunState:
    """One run as its stages fill it in, in order: what each stage reads was written by the ones before."""

    config: RunConfig
    task: Task
    problems: list[Problem]
    model: ResolvedModel
    renderer: PromptRenderer
    timings: dict[str, float]
    templates: list[hints.HintTemplate]  # the configured hints when biased_context runs (checked), else none
    engine_info: dict[str, Any]  # what the subject's engine is (its info()), known before it starts
    out_dir: Path = Path()
    engines: Engines = field(init=False)
    stages: dict[str, dict[str, float]] = field(default_factory=dict)
    traces: list[Trace] = field(default_factory=list)
    cots: list[Completion] = field(default_factory=list)
    filler: dict[str, Any] = field(default_factory=dict)
    longest: dict[int, int] = field(default_factory=dict)
    # (trace, item) of every test: a perturbed CoT, a rewrite for a model to write, or a skip
    items: list[tuple[Trace, Item]] = field(default_factory=list)
    skipped: list[dict[str, Any]] = field(default_factory=list)
    # (trace, perturbed CoT): originals first, every row of the table one of these
    perturbed: list[tuple[Trace, Perturbed]] = field(default_factory=list)
    row_cut: list[bool | None] = field(default_factory=list)
    answer_requests: list[GenerationRequest] = field(default_factory=list)
    answers: list[Completion] = field(default_factory=list)
    readings: list[Reading] = field(default_factory=list)
    reference: dict[tuple[int, int], Reading] = field(default_factory=dict)  # each trace's original answer
    scores: list[dict[str, float]] | None = None

    problem: dict[int, Problem] = field(init=False)  # the problems by item id
    question: dict[int, str] = field(init=False)  # their questions by item id

    def __post_init__(self) -> None:
        self.problem = {p.item_id: p for p in self.problems}
        self.question = {p.item_id: p.question for p in self.problems}


def run(config: RunConfig, engine: Engine | None = None) -> RunOutput:
    """Runs one configuration end to end and writes ``results.parquet`` and ``summary.json``.

    A rerun of the same config (after a kill or a Slurm requeue) takes every finished engine result
    from the folder's request store and computes only the rest (see ``faithfulness/store.py``).

    Args:
        config: The run's config, checked (``faithfulness.loading.rules.load``, before any folder or engine).
        engine: An already started engine for ``config.model`` (tests share one); started here if None.
    """
    with ExitStack() as held:  # the results folder's lock and request store, released however the run ends
        run = prepare(config, engine)
        run.out_dir = held.enter_context(lock_folder(results_dir(config)))  # after the checks: bad input, no folder
        store = held.enter_context(RequestStore(run.out_dir / STORE_FILE))
        held.enter_context(console.engine_log(run.out_dir / "engine.log", config.verbose))  # unless verbose
        run.engines = Engines.open(run, store, engine)
        chains_of_thought(run)  # 1. one CoT per problem and sample
        perturb(run)  # 2. every test's perturbed CoTs: pure functions of each trace
        rewrite(run)  # 3. model-written mistakes and paraphrases
        regenerate(run)  # 4. the rest of every corrupted CoT, a fresh CoT for every hinted question
        judge(run)  # 4b. (biased_context.judge) whether each hinted CoT mentions its hint
        forced_answers(run)  # 5. the answer after every CoT
        answer_scores(run)  # 6. log P of the original, the correct and the target answer
        return write_results(run)  # rows → results.parquet → summary.json and figures


def prepare(config: RunConfig, engine: Engine | None = None) -> RunState:
    """The task and its problems, the model (fetched and converted on first use), the engine's identity, the renderer.

    The engine is described (a server backend: checked to serve this model) before any folder is made.
    """
    timings: dict[str, float] = {}
    clock = time.perf_counter()
    task, problems = build_task(config)
    model = resolve_model(config.model, config.cache_dir)
    timings["model_prepare_s"] = time.perf_counter() - clock
    info = engine.info() if engine is not None else describe_engine(model.path, asdict(config.engine))
    renderer = build_renderer(config, config.model, config.prompt_format, model, task)
    return RunState(config, task, problems, model, renderer, timings, hint_templates(config, task), info)


def chains_of_thought(run: RunState) -> None:
    """One CoT per (problem, sample), each with a seed of its own; reasoning models' thinking cut if never closed."""
    config, renderer = run.config, run.renderer
    keys = [(p.item_id, s) for p in run.problems for s in range(config.samples)]
    requests = [
        GenerationRequest(
            renderer.cot_prompt(run.question[i]),
            stop=tuple(renderer.cot_stop()),
            seed=stable_seed(config.seed, i, s),
            **asdict(config.sampling),
        )
        for i, s in keys
    ]
    run.cots = _stage(run.engines.subject, requests, "chains of thought", run.stages)
    run.traces = [
        Trace(i, s, req.seed or 0, c.text, tuple(split_steps(c.text)), c.finish_reason)
        for (i, s), req, c in zip(keys, requests, run.cots)
    ]


def perturb(run: RunState) -> None:
    """Every configured test's items of every trace; the filler plan needs the CoTs' lengths and the tokenizer."""
    run.longest = longest_per_question([t.item_id for t in run.traces], [c.generated_tokens for c in run.cots])
    run.filler = plan(run.config, run.renderer, run.problems[0].question, run.longest)
    tests = build_perturbations(run.config, run.filler, run.problem, run.templates)
    items = [(t, item) for t in run.traces for fn in [original, *tests] for item in fn(t)]
    run.items = items


def rewrite(run: RunState) -> None:
    """Model-written rewrites applied; items that could not be perturbed set aside; originals first.

    Every other prompt of a trace extends a prefix of its original, so once the originals are computed
    (a few engine steps) the rest read their prefixes from the cache.
    """
    items = run.items
    rewrites = [(t, r) for t, r in items if isinstance(r, Rewrite)]
    written = model_rewrites(run.engines, run.renderer, [r for _, r in rewrites], run.config, run.stages)
    applied = {id(r): apply_rewrite(r, w.text) for (_, r), w in zip(rewrites, written)}
    items = [(t, applied.get(id(i), i)) for t, i in items]
    run.skipped = [{"item_id": t.item_id, "sample": t.sample, **asdict(i)} for t, i in items if isinstance(i, Skipped)]
    run.perturbed = sorted(
        ((t, p) for t, p in items if isinstance(p, Perturbed)), key=lambda tp: tp[1].perturbation != "original"
    )


def regenerate(run: RunState) -> None:
    """The subject continues every corrupted or paraphrased CoT and writes a fresh one for every hinted question.

    Each hinted CoT's mention of its hint is read right after; per row, ``row_cut`` says whether its
    thinking (or the regenerated rest of it) was never closed (None: not a reasoning model).
    """
    tags = think_tags(run.config.model)
    perturbed = run.perturbed
    todo = [n for n, (_, p) in enumerate(perturbed) if p.regenerate]
    requests = [regenerate_request(run.renderer, run.question, *perturbed[n], run.config) for n in todo]
    rests = _stage(run.engines.subject, requests, "regenerations", run.stages)
    templates = {t.name: t for t in run.templates}
    for n, rest in zip(todo, rests):
        trace, p = perturbed[n]
        perturbed[n] = (trace, hints.mark_verbalised(with_continuation(p, rest.text), templates))
    cut = {(t.item_id, t.sample): thinking_cut(c, tags) for t, c in zip(run.traces, run.cots)}
    rest_cut = {n: thinking_cut(rest, tags) for n, rest in zip(todo, rests)}
    # a hinted question's CoT is written afresh, so only its own thinking counts
    run.row_cut = [
        None if tags is None else bool((p.hint is None and cut[(t.item_id, t.sample)]) or rest_cut.get(n))
        for n, (t, p) in enumerate(perturbed)
    ]


def judge(run: RunState) -> None:
    """With ``biased_context.judge``: the subject asked whether each hinted CoT mentions its hint."""
    block = run.config.biased_context
    if not (run.config.runs("biased_context") and block is not None and block.judge):
        return
    todo = [n for n, (_, p) in enumerate(run.perturbed) if p.hint and p.level == 1]
    requests = [
        GenerationRequest(
            run.renderer.instruction_prompt(hints.judge_prompt(block.judge_prompt, run.perturbed[n][1])), max_tokens=3
        )
        for n in todo
    ]
    for n, verdict in zip(todo, _stage(run.engines.subject, requests, "hint judge", run.stages)):
        trace, p = run.perturbed[n]
        if p.hint is not None:
            run.perturbed[n] = (trace, replace(p, hint=replace(p.hint, judged=hints.parse_judgement(verdict.text))))


def forced_answers(run: RunState) -> None:
    """The answer after every CoT, read both ways; the original CoT's answers are each trace's reference.

    No CoT, early answering at k = 0 and filler at m = 0 are one prompt, and no filler prompt depends on
    the CoT: each is asked once per question and reported under each row. Other repeats (the re-ask of
    the full CoT) stay requests of their own: they measure batch noise.
    """
    settings, problem = answer_settings(run.config, run.task), run.problem
    # what will be scored and is known before the answers (all but the original answer): the engine keeps
    # those tokens' logprobs while it generates, so many scores need no request of their own
    known = [tuple(_scored(run, t, p).values()) if run.config.score_answers else () for t, p in run.perturbed]
    run.answer_requests = [
        GenerationRequest(run.renderer.answer_prompt(asked(run.question, t, p), p.cot), score=s, **settings)
        for (t, p), s in zip(run.perturbed, known)
    ]
    shared = [
        (not p.cot or lookup(p.perturbation).cot_free) and r.temperature == 0
        for (_, p), r in zip(run.perturbed, run.answer_requests)
    ]
    run.answers = _stage_once(run.engines.subject, run.answer_requests, shared, "forced answers", run.stages)
    run.readings = [read_answers(run.task, problem[t.item_id], a.text) for (t, _), a in zip(run.perturbed, run.answers)]
    run.reference = {
        (t.item_id, t.sample): r for (t, p), r in zip(run.perturbed, run.readings) if p.perturbation == "original"
    }


def answer_scores(run: RunState) -> None:
    """(score_answers) log P of each row's original answer, the correct one and the bias target (or every option)."""
    if not run.config.score_answers:
        return
    to_score = [_scored(run, t, p, *run.reference[(t.item_id, t.sample)].values()) for t, p in run.perturbed]
    run.scores = score_answers(run.engines.subject, run.answer_requests, to_score, run.stages)


def _scored(run: RunState, trace: Trace, perturbed: Perturbed, *answers: str | None) -> dict[str, str]:
    """What a forced answer is scored on: ``answers``, the correct answer and the bias target (or every option)."""
    item = run.problem[trace.item_id]
    target = perturbed.hint.target if perturbed.hint else item.target
    return run.task.continuations(item, [*answers, item.answer, target])


def write_results(run: RunState) -> RunOutput:
    """The rows (with the run's provenance) → results.parquet; the summary and figures derived from it."""
    config, out_dir = run.config, run.out_dir
    context = run_context(config, run.task, run.model, run.renderer, run.engines.subject)
    run.engines.close()
    rows = build_rows(
        run.task,
        run.problems,
        run.perturbed,
        run.answer_requests,
        run.answers,
        run.readings,
        run.reference,
        run.scores,
        context,
        run.row_cut,
    )
    if config.filler.mode == "per_question":
        set_fractions(rows, run.longest, [name for name, test in TESTS.items() if test.by_length])
    try:
        table = to_table(rows)
    except Exception:
        write_json(rows, out_dir / "rows.unvalidated.json")  # keep the engine's work for inspection
        raise
    write_parquet(table, out_dir / "results.parquet")  # first: everything below is derived from it
    write_json(config.plain, out_dir / "config.json")
    summary = {
        "run": {
            **context,
            "results_dir": str(out_dir),
            "n_problems": len(run.problems),
            "samples": config.samples,
            "host": platform.node(),
            "pid": os.getpid(),
        },  # jobs of a sweep that shared an engine share a pid
        **summarise_run(table, summary_options(config)),
        "skipped": run.skipped,
        "mistake_writer": run.engines.writer.summary() if run.engines.writer else None,
        "filler_lengths": run.filler["lengths"],
        "filler_string": run.filler["string"],
        "stages": run.stages,
        "timings": run.timings,
    }
    summary["figures"] = [str(p) for p in write_figures(view(table, config.answer.extract), summary, out_dir)]
    write_json(summary, out_dir / "summary.json")
    return RunOutput(out_dir, table, summary)


def model_rewrites(
    engines: Engines,
    renderer: PromptRenderer,
    rewrites: list[Rewrite],
    cfg: RunConfig,
    stages: dict[str, dict[str, float]],
) -> list[Completion]:
    """Paraphrases by the subject model; mistakes by the writer if there is one, else by the subject."""
    writer = engines.writer
    theirs = [writer is not None and r.kind == "mistake" for r in rewrites]
    out: list[Any] = [None] * len(rewrites)
    mine = [n for n, t in enumerate(theirs) if not t]
    requests = [rewrite_request(renderer, rewrites[n], cfg) for n in mine]
    for n, c in zip(mine, _stage(engines.subject, requests, "rewrites", stages)):
        out[n] = c
    if writer is not None and any(theirs):
        todo = [n for n, t in enumerate(theirs) if t]
        requests = [rewrite_request(writer.renderer, rewrites[n], cfg) for n in todo]
        for n, c in zip(todo, _stage(writer.engine, requests, "mistakes by the writer", stages)):
            out[n] = c
        writer.done()  # the subject's engine starts again after it
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
    return task, hints.with_targets(problems, cfg.seed, task.kind) if cfg.runs("biased_context") else problems


def hint_templates(cfg: RunConfig, task: Task) -> list[hints.HintTemplate]:
    """The configured hints when ``biased_context`` runs (checked against the task), else none."""
    if not cfg.runs("biased_context") or cfg.biased_context is None:
        return []
    return hints.hint_templates(cfg.biased_context, task.kind.name, task.name)


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
    cfg: RunConfig, filler: dict[str, Any], problems: dict[int, Problem], templates: list[hints.HintTemplate]
) -> list[Callable[[Trace], list[Item]]]:
    """Binds each configured test (faithfulness/registry.py) to its settings; randomness is seeded per trace."""
    settings = Binding(cfg, filler, problems, templates)
    return [lookup(name).bind(settings) for name in cfg.perturbations]


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
