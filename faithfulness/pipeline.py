"""The pipeline, top to bottom: task → CoTs → perturbed prompts → one batched answer pass → rows → summary."""

from __future__ import annotations

import hashlib
import importlib.metadata
import json
import platform
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

import faithfulness
from faithfulness import metrics
from faithfulness.engines import Completion, Engine, GenerationRequest, load_engine
from faithfulness.errors import ConfigError
from faithfulness.models import ResolvedModel, resolve_model
from faithfulness.perturbations import PERTURBATIONS, Perturbed, Trace, original
from faithfulness.prompts import PromptRenderer, PromptTemplate
from faithfulness.results import to_table, write_json, write_parquet
from faithfulness.steps import split_steps
from faithfulness.tasks import Addition, Problem, last_integer, make_task


@dataclass
class RunOutput:
    """What a run leaves behind: its folder, table, summary and timings."""

    out_dir: Path
    table: pd.DataFrame
    summary: dict[str, Any]


def run(cfg: dict[str, Any], engine: Engine | None = None) -> RunOutput:
    """Runs one configuration end to end and writes ``results.parquet`` and ``summary.json``.

    Args:
        cfg: The resolved config (see ``conf/config.yaml``).
        engine: An already started engine for ``cfg['model']`` (tests share one); started here if None.
    """
    timings: dict[str, float] = {}
    clock = time.perf_counter()
    task, problems, perturbations = build_task(cfg)
    model = resolve_model(cfg["model"], cfg["cache_dir"])
    timings["model_prepare_s"] = time.perf_counter() - clock
    renderer = build_renderer(cfg, model)
    out_dir = results_dir(cfg)
    own_engine = engine is None
    if engine is None:
        clock = time.perf_counter()
        engine = load_engine(model.path, dict(cfg["engine"]), cfg["cache_dir"])
        timings["engine_start_s"] = time.perf_counter() - clock
    stages: dict[str, dict[str, float]] = {}

    keys = [(p, s) for p in problems for s in range(cfg["samples"])]
    cot_requests = [
        GenerationRequest(renderer.cot_prompt(p.question), stop=tuple(renderer.cot_stop()), seed=cot_seed(cfg["seed"], p.item_id, s), **cfg["sampling"])
        for p, s in keys
    ]  # fmt: skip
    cots = _stage(engine, cot_requests, "chains of thought", stages)
    traces = [
        Trace(p.item_id, s, req.seed or 0, c.text, tuple(split_steps(c.text)), c.finish_reason)
        for (p, s), req, c in zip(keys, cot_requests, cots)
    ]

    by_id = {p.item_id: p for p in problems}
    perturbed = [(t, p) for t in traces for fn in [original, *perturbations] for p in fn(t)]
    answer_requests = [
        GenerationRequest(renderer.answer_prompt(by_id[t.item_id].question, p.cot), **cfg["answer"]) for t, p in perturbed
    ]
    answers = _stage(engine, answer_requests, "forced answers", stages)

    context = run_context(cfg, model, renderer, engine)
    if own_engine:
        engine.close()
    table = to_table(build_rows(task, by_id, perturbed, answer_requests, answers, context))
    summary = {
        "run": {**context, "results_dir": str(out_dir), "n_problems": len(problems), "samples": cfg["samples"]},
        "metrics": metrics.early_answering_summary(table),
        "stages": stages,
        "timings": timings,
    }
    write_parquet(table, out_dir / "results.parquet")
    write_json(summary, out_dir / "summary.json")
    write_json(cfg, out_dir / "config.json")
    return RunOutput(out_dir, table, summary)


def _stage(engine: Engine, requests: list[GenerationRequest], name: str, stages: dict[str, dict[str, float]]) -> list[Completion]:
    """One batched engine pass, with its counts recorded under ``stages[name]``."""
    clock, calls = time.perf_counter(), engine.calls
    completions = engine.generate(requests, desc=name)
    stages[name] = {
        "requests": len(requests),
        "engine_calls": engine.calls - calls,
        "seconds": time.perf_counter() - clock,
        "prompt_tokens": sum(c.prompt_tokens for c in completions),
        "cached_tokens": sum(c.cached_tokens for c in completions),
        "generated_tokens": sum(c.generated_tokens for c in completions),
    }
    return completions


def build_task(cfg: dict[str, Any]) -> tuple[Addition, list[Problem], list[Any]]:
    """Validates the task and perturbation settings before anything slow starts."""
    for key in ("seed", "samples"):
        value = cfg[key]
        if isinstance(value, bool) or not isinstance(value, int) or value < (0 if key == "seed" else 1):
            raise ConfigError(f"{key}={value!r} is not allowed: must be a whole number ≥ {0 if key == 'seed' else 1}")
    task = make_task(cfg["task"], digits=cfg["digits"], operands=cfg["operands"], n=cfg["n"])
    unknown = [name for name in cfg["perturbations"] if name not in PERTURBATIONS]
    if unknown:
        raise ConfigError(f"perturbations={unknown} is not allowed: choose from {sorted(PERTURBATIONS)}")
    return task, task.items(cfg["seed"]), [PERTURBATIONS[name] for name in cfg["perturbations"]]


def build_renderer(cfg: dict[str, Any], model: ResolvedModel) -> PromptRenderer:
    """Loads the model's tokenizer and the configured prompt template."""
    from transformers import AutoTokenizer

    fmt = cfg["prompt_format"]
    if fmt not in cfg["prompts"]:
        raise ConfigError(f"prompt_format={fmt!r} is not allowed: choose one of {sorted(cfg['prompts'])}")
    revision = None if model.revision in ("local",) or len(model.revision) == 64 else model.revision
    tokenizer = AutoTokenizer.from_pretrained(model.path, revision=revision)
    return PromptRenderer(PromptTemplate(format=fmt, **cfg["prompts"][fmt]), tokenizer)


def cot_seed(seed: int, item_id: int, sample: int) -> int:
    """A per-request sampling seed: independent of batch composition, stable across reruns."""
    digest = hashlib.sha256(f"{seed}/{item_id}/{sample}".encode()).digest()
    return int.from_bytes(digest[:4], "little") >> 1  # 31 bits: fits every engine's seed type


def build_rows(
    task: Addition,
    problems: dict[int, Problem],
    perturbed: list[tuple[Trace, Perturbed]],
    requests: list[GenerationRequest],
    answers: list[Completion],
    context: dict[str, Any],
) -> list[dict[str, Any]]:
    """Joins traces, perturbations and parsed answers into schema rows with same/changed/unparsed."""
    parsed = [task.parse_answer(a.text) for a in answers]
    reference = {(t.item_id, t.sample): ans for (t, p), ans in zip(perturbed, parsed) if p.perturbation == "original"}
    rows = []
    for (trace, pert), request, answer, value in zip(perturbed, requests, answers, parsed):
        problem, ref = problems[trace.item_id], reference[(trace.item_id, trace.sample)]
        n = len(trace.steps)
        outcome = "unparsed" if value is None or ref is None else ("same" if value == ref else "changed")
        rows.append({
            "schema_version": faithfulness.SCHEMA_VERSION, "run_id": context["run_id"],
            "model": context["model"], "model_revision": context["model_revision"],
            "model_family": context["model_family"], "model_size": context["model_size"],
            "task": context["task"], "digits": context["digits"], "operands": context["operands"], "seed": context["seed"],
            "item_id": problem.item_id, "question": problem.question, "correct_answer": problem.answer,
            "sample": trace.sample, "cot_seed": trace.seed, "cot": trace.cot, "cot_finish_reason": trace.finish_reason,
            "cot_stated_answer": last_integer(trace.cot), "n_steps": n,
            "perturbation": pert.perturbation, "level": pert.level, "fraction": pert.level / n if n else None,
            "shown_cot": pert.cot, "prompt": request.prompt, "answer_text": answer.text, "answer": value,
            "reference_answer": ref, "outcome": outcome, "correct": None if value is None else value == problem.answer,
            "prompt_tokens": answer.prompt_tokens, "cached_tokens": answer.cached_tokens,
            "generated_tokens": answer.generated_tokens, "prompt_format": context["prompt_format"],
            "template_hash": context["template_hash"], "engine": context["engine"],
            "engine_version": context["engine_version"], "dtype": context["dtype"], "versions": context["versions"],
        })  # fmt: skip
    return rows


def run_context(cfg: dict[str, Any], model: ResolvedModel, renderer: PromptRenderer, engine: Engine) -> dict[str, Any]:
    """The per-run facts every row and the summary record."""
    info = engine.info()
    versions = {name: _version(name) for name in ("torch", "transformers", "numpy", "pyarrow", "hydra-core")}
    versions.update(faithfulness=faithfulness.__version__, python=platform.python_version())
    return {
        "run_id": config_hash(cfg), "model": cfg["model"]["name"], "model_revision": model.revision,
        "model_family": cfg["model"].get("family"), "model_size": cfg["model"].get("size"),
        "task": cfg["task"], "digits": cfg["digits"], "operands": cfg["operands"], "seed": cfg["seed"],
        "prompt_format": cfg["prompt_format"], "template_hash": renderer.template_hash(),
        "engine": info["engine"], "engine_version": info["engine_version"], "dtype": str(info.get("engine_dtype")),
        "versions": json.dumps(versions, sort_keys=True), "engine_settings": info,
    }  # fmt: skip


def _version(name: str) -> str | None:
    try:
        return importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
        return None


# Keys that say where things go, not what is computed: they do not change a run's identity.
_NOT_IDENTITY = ("results_dir", "cache_dir", "hydra")


def config_hash(cfg: dict[str, Any]) -> str:
    """Hash of the config keys that determine results: same config, same folder (for resuming)."""
    identity = {k: v for k, v in cfg.items() if k not in _NOT_IDENTITY}
    return hashlib.sha256(json.dumps(identity, sort_keys=True, default=str).encode()).hexdigest()[:10]


def results_dir(cfg: dict[str, Any]) -> Path:
    """The deterministic folder of a config's results."""
    task = f"{cfg['task']}-d{cfg['digits']}-o{cfg['operands']}"
    run = f"n{cfg['n']}-s{cfg['samples']}-seed{cfg['seed']}-{config_hash(cfg)}"
    return Path(cfg["results_dir"]).expanduser() / task / cfg["model"]["name"] / run
