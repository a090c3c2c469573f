"""Benchmark: the harness's pipeline vs the naive way (transformers ``generate``, one prompt at a time).

    python scripts/bench.py n=100 engine.enforce_eager=true            # Hydra overrides, as for run.py

One invocation runs one workload both ways on the same machine: first the harness exactly as
``run.py`` runs it (its engine wrapped only to record every request per stage), then the early-answering
scaling probe, then the naive reference replaying a random subset of each stage's recorded requests
one at a time (per-stage budget ``--naive-seconds``, at most ``--naive-max`` requests), extrapolated to
the whole stage by its mean time per request. It prints a per-stage table, writes a JSON report and
appends one line to ``docs/benchmarks.md``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import string
import subprocess
import sys
import time
from dataclasses import asdict
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench_parts import (
    MemoryMonitor,
    Recorded,
    RecordingEngine,
    by_stage,
    cache_breakdown,
    early_answering_scaling,
    tree_cpu_seconds,
)
from bench_report import evaluate, format_report, markdown_line
from engine_floor import cpu_description
from engine_floor import measure as measure_floor
from naive_reference import NaiveReference

from faithfulness.engines import ScoreRequest, load_engine
from faithfulness.loading.hydra import compose
from faithfulness.loading.rules import load
from faithfulness.tasks import Problem


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Benchmark options; everything else is a Hydra override of ``conf/config.yaml``."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("overrides", nargs="*", help="Hydra overrides, e.g. n=100 model=smollm2-135m")
    p.add_argument("--naive-seconds", type=float, default=120.0, help="per-stage time budget of the naive reference")
    p.add_argument("--naive-max", type=int, default=40, help="most requests the reference replays per stage")
    p.add_argument("--naive-min", type=int, default=3, help="fewest requests per stage, whatever the budget")
    p.add_argument("--lengths", default="4,8,16,32", help="CoT lengths (steps) of the early-answering scaling probe")
    p.add_argument("--reps", type=int, default=4, help="CoTs per length in the scaling probe")
    p.add_argument(
        "--json", type=Path, default=None, help="report path (default results/bench/<model>-n<n>-<time>.json)"
    )
    p.add_argument("--markdown", type=Path, default=ROOT / "docs" / "benchmarks.md", help="table to append a line to")
    p.add_argument("--seed", type=int, default=0, help="seed of the naive reference's request subset")
    p.add_argument("--reprint", type=Path, default=None, help="re-derive and print the figures of a saved JSON report")
    return p.parse_args(argv)


def load_average() -> list[float]:
    """1, 5 and 15 minute load averages (the machine is shared: timings are read next to them)."""
    return [round(x, 2) for x in os.getloadavg()]


def naive_stage(
    reference: NaiveReference, call: Recorded, args: argparse.Namespace, rng: np.random.Generator, parse: Any
) -> dict[str, Any]:
    """Replays a random subset of one stage's requests one at a time; extrapolates to the whole stage."""
    order = rng.permutation(len(call.requests))
    done, clock = [], time.perf_counter()
    for i in order[: args.naive_max]:
        if len(done) >= args.naive_min and time.perf_counter() - clock > args.naive_seconds:
            break
        done.append((int(i), reference.answer(call.requests[int(i)])))
    total, k = len(call.requests), len(done)
    print(
        f"naive reference, {call.name}: {k}/{total} requests in {time.perf_counter() - clock:.1f} s",
        file=sys.stderr,
        flush=True,
    )
    seconds = [r.seconds for _, r in done]
    out = {
        "requests": total,
        "sampled": k,
        "extrapolated": k < total,
        "measured_seconds": sum(seconds),
        "seconds": float(np.mean(seconds)) * total if k else 0.0,
        "cpu_seconds": float(np.mean([r.cpu_seconds for _, r in done])) * total if k else 0.0,
        "prompt_tokens": float(np.mean([r.prompt_tokens for _, r in done])) * total if k else 0.0,
        "generated_tokens": float(np.mean([r.generated_tokens for _, r in done])) * total if k else 0.0,
    }
    out["generated_tok_s"] = sum(r.generated_tokens for _, r in done) / max(sum(seconds), 1e-9)
    out["processed_tok_s"] = sum(r.prompt_tokens + r.generated_tokens for _, r in done) / max(sum(seconds), 1e-9)
    if call.requests and isinstance(call.requests[0], ScoreRequest):
        diffs = [abs(r.logprob - call.results[i]) for i, r in done]
        out["agreement"] = float(np.mean([d <= 1e-2 for d in diffs])) if diffs else None
        out["max_abs_logprob_diff"] = max(diffs, default=None)
    else:
        out["agreement"] = float(np.mean([r.text == call.results[i].text for i, r in done])) if done else None
        if call.name == "forced answers":
            same = [parse(r.text) == parse(call.results[i].text) for i, r in done]
            out["answer_agreement"] = float(np.mean(same)) if same else None
    return out


def main(argv: list[str] | None = None) -> dict[str, Any]:
    """Runs the benchmark; returns the report it wrote."""
    args = parse_args(argv)
    if args.reprint:
        return reprint(args.reprint)
    cfg = load(compose(args.overrides))
    from faithfulness import pipeline
    from faithfulness.models import resolve_model

    model = resolve_model(cfg.model, cfg.cache_dir)  # converted once, outside both timings
    report: dict[str, Any] = {
        "when": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "overrides": args.overrides,
        "model": cfg.model.name,
        "n": cfg.n,
        "samples": cfg.samples,
        "perturbations": list(cfg.perturbations),
        "engine_settings": asdict(cfg.engine),
        "machine": {
            "cpus": os.cpu_count(),
            "platform": platform.platform(),
            "cpu": cpu_description(),
            "uptime_before": _uptime(),
            "load_before": load_average(),
        },
    }
    memory = MemoryMonitor(phase="engine start")
    clock, cpu = time.perf_counter(), tree_cpu_seconds()
    engine = RecordingEngine(load_engine(model.path, asdict(cfg.engine), cfg.cache_dir))
    engine_start, engine_start_cpu = time.perf_counter() - clock, tree_cpu_seconds() - cpu

    memory.phase = "harness"
    clock, cpu = time.perf_counter(), tree_cpu_seconds()
    out = pipeline.run(cfg, engine=engine)
    harness_wall, harness_cpu = time.perf_counter() - clock, tree_cpu_seconds() - cpu
    stages = out.summary["stages"]
    calls = by_stage(engine.calls, list(stages))
    report["harness"] = {
        "engine_start_s": engine_start,
        "wall_s": harness_wall,
        "stages": stages,
        "engine_start_cpu_s": engine_start_cpu,
        "cpu_s": harness_cpu,
        "stage_cpu_s": {call.name: call.cpu_seconds for call in calls},
        "timings": out.summary["timings"],
        "results_dir": str(out.out_dir),
        "engine_counters": dict(engine.counters),
        "results_table_bytes": int(out.table.memory_usage(deep=True).sum()),
        "load_after": load_average(),
    }

    memory.phase = "scaling probe"
    task, _ = pipeline.build_task(cfg)
    renderer = pipeline.build_renderer(cfg, cfg.model, cfg.prompt_format, model, task)
    report["forced_answer_cache"] = cache_breakdown(out.table, renderer, engine.info().get("engine_block_size"))
    fresh = [p.question for p in task.items(cfg.seed + 1_000_003, cfg.n)]  # questions whose prefixes are not cached
    cots = [c.text for c in calls[0].results]
    lengths = [int(x) for x in args.lengths.split(",")]
    report["scaling"] = early_answering_scaling(
        engine.inner, renderer, fresh, cots, lengths, args.reps, pipeline.answer_settings(cfg, task)
    )
    memory.phase = "engine floor"
    report["engine_floor"] = measure_floor(engine.inner) | {"max_num_seqs": engine.inner.limits()["max_num_seqs"]}
    engine.close()
    path = args.json or ROOT / "results" / "bench" / f"{cfg.model.name}-n{cfg.n}-{int(time.time())}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(report, indent=2, default=str))  # the harness half, kept if the naive half is cut short

    memory.phase = "naive"
    clock, cpu = time.perf_counter(), time.process_time()
    reference = NaiveReference(model.path, cfg.engine.dtype)
    naive_start, naive_start_cpu = time.perf_counter() - clock, time.process_time() - cpu
    rng = np.random.default_rng(args.seed)
    any_letter = Problem(0, "", "", tuple(string.ascii_uppercase))  # the texts are compared, not the items
    naive = {
        call.name: naive_stage(reference, call, args, rng, lambda text: task.parse_answer(text, any_letter))
        for call in calls
    }
    report["naive"] = {
        "start_s": naive_start,
        "start_cpu_s": naive_start_cpu,
        "stages": naive,
        "torch_threads": reference.torch.get_num_threads(),
        "method": f"random subset per stage (≤ {args.naive_max} requests or {args.naive_seconds:g} s, "
        f"≥ {args.naive_min}), time per request × requests in the stage",
    }
    report["peak_rss_gib"] = memory.stop()
    report["machine"].update(uptime_after=_uptime(), load_after=load_average())
    report["summary"] = evaluate(report)

    path.write_text(json.dumps(report, indent=2, default=str))
    report["json"] = str(path)
    print(format_report(report))
    if args.markdown:
        _append_markdown(args.markdown, report, path)
    print(f"report: {path}")
    return report


def reprint(path: Path) -> dict[str, Any]:
    """Recomputes the cache breakdown and the summary of a saved report from its results table; prints it."""
    import pandas as pd

    from faithfulness import pipeline
    from faithfulness.models import resolve_model

    report = json.loads(path.read_text())
    cfg = load(compose(report["overrides"]))
    table = pd.read_parquet(Path(report["harness"]["results_dir"]) / "results.parquet")
    model = resolve_model(cfg.model, cfg.cache_dir)
    renderer = pipeline.build_renderer(cfg, cfg.model, cfg.prompt_format, model, pipeline.build_task(cfg)[0])
    block = report.get("forced_answer_cache", {}).get("block_size")
    report["forced_answer_cache"] = cache_breakdown(table, renderer, block)
    report["summary"] = evaluate(report)
    path.write_text(json.dumps(report, indent=2, default=str))
    print(format_report(report))
    return report


def _uptime() -> str:
    return subprocess.run(["uptime"], capture_output=True, text=True, check=False).stdout.strip()


def _append_markdown(path: Path, report: dict[str, Any], json_path: Path) -> None:
    header, line = markdown_line(report, json_path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if not path.exists():
        path.write_text("# Benchmarks: harness vs naive (`python scripts/bench.py`)\n\n" + header)
    with path.open("a") as f:
        f.write(line)


if __name__ == "__main__":
    main()
