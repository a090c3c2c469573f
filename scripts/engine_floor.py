"""The engine floor: how fast this machine's vLLM does a run's token work with no harness around it.

    python scripts/engine_floor.py results/addition-d3-o2/qwen2.5-coder-0.5b-instruct/n50-s1-seed0-<hash>

For a finished run (its ``summary.json``), starts the same model with the same engine settings and
measures pure batched throughput on random prompts: prefill tokens/s for uncached prompt tokens,
and decode tokens/s at batch sizes 1 to 256. Each stage's floor is its uncached prompt tokens ÷
prefill rate + its decode time: the stage's requests (``generated_lengths``: how many generated
how many tokens) decode as vLLM schedules them, at most ``max_num_seqs`` at once, a finished one's
place taken by the next, each step taking batch ÷ decode rate at that batch. The first token of a
request comes out of its prefill, so a request of L tokens decodes L − 1 steps. The script prints
harness seconds ÷ floor per stage and overall, and writes ``engine_floor.json`` beside the
summary. Engine settings given after the folder (``engine.enforce_eager=true``) are probed instead
of the run's (``engine_floor-enforce_eager=true.json``). ``scripts/bench.py`` measures the same
floor on its own engine after the harness run.

The floor is meant as a lower bound, not a prediction (longest requests are scheduled first, so the
batch stays full longest; the probe's decode context, 128 tokens, is shorter than most real ones),
but it is loose: it adds decode steps that vLLM runs inside prefill steps, so a prefill-heavy
stage can come in under it (docs/performance.md). Floors measured before 2026-12-02 evening timed
48 decoded tokens per call, whose fixed cost understated the decode rate (``probe`` in the JSON
says which). Summaries written before ``generated_lengths`` existed get
the older, looser floor: every generated token decoded at the stage's mean batch (``"decode":
"mean batch"`` in the stage's entry).
"""

from __future__ import annotations

import argparse
import heapq
import json
import os
import platform
import sys
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

PREFILL = (32, 256)  # prompts × tokens per prompt of the prefill probe: full chunks, like a stage of CoT prompts
DECODE_PROMPT = 128  # context of the decode probes (whole 32-token blocks); shorter than most prompts here: a floor
DECODE_TOKENS = (
    128  # tokens decoded per probe: enough that a call's fixed cost (scheduling, the last prompt token) is small
)
BATCHES = (1, 4, 16, 64, 256)  # decode batch sizes probed (256: vLLM's CPU max_num_seqs)


def cpu_description() -> dict[str, Any]:
    """The CPU's model name, core count and whether it has AVX-512 (timings differ ~3× across CPU classes)."""
    flags, name = set(), platform.processor()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name") and name in ("", "x86_64"):
                name = line.split(":", 1)[1].strip()
            if line.startswith("flags"):
                flags = set(line.split(":", 1)[1].split())
    except OSError:
        pass
    avx512 = sorted(f for f in flags if f.startswith("avx512"))
    return {
        "model": name,
        "cores": os.cpu_count(),
        "avx512": bool(avx512),
        "avx512_flags": avx512,
        "amx": any(f.startswith("amx") for f in flags),
        "avx2": "avx2" in flags,
    }


def measure(engine: Any, batches: tuple[int, ...] = BATCHES, seed: int = 7_000_000) -> dict[str, Any]:
    """Prefill tokens/s and decode tokens/s at each batch size, on ``engine`` (a VLLMEngine).

    Each decode figure times DECODE_TOKENS tokens on prompts that a first call of the same prompts
    left in the prefix cache, so it holds almost no prefill (the prompts are whole KV blocks; a
    cached prompt still recomputes its last token).
    """
    engine.timed_batch(4, 64, 4, seed)  # warm-up: the first call of an engine pays one-time costs
    b, p = PREFILL
    prefill_s = engine.timed_batch(b, p, 1, seed + 1)
    decode = {}
    for n, batch in enumerate(batches):
        engine.timed_batch(batch, DECODE_PROMPT, 1, seed + 10 + n)  # prefill: the prompts are then cached
        decode[batch] = batch * DECODE_TOKENS / engine.timed_batch(batch, DECODE_PROMPT, DECODE_TOKENS, seed + 10 + n)
    return {
        "prefill_tok_s": b * p / prefill_s,
        "decode_tok_s": decode,
        "probe": {
            "prefill": list(PREFILL),
            "decode_prompt": DECODE_PROMPT,
            "decode_tokens": DECODE_TOKENS,
            "method": "decode timed on cached prompts",
        },
    }


def decode_rate(floor: dict[str, Any], batch: float) -> float:
    """Decode tokens/s at ``batch`` concurrent requests, interpolated in log batch size between probes."""
    points = sorted((int(k), rate) for k, rate in floor["decode_tok_s"].items())  # keys are str once read from JSON
    sizes, rates = zip(*points)
    return float(np.interp(np.log(max(batch, 1.0)), np.log(sizes), rates))


def drain_seconds(lengths: dict[str, int], floor: dict[str, Any], max_num_seqs: int = 256) -> float:
    """Decode seconds of one batched call whose requests generate ``lengths`` tokens (``{"L": count}``).

    At most ``max_num_seqs`` requests run at once, longest first, a finished one's place taken by
    the next; a step at batch b takes b ÷ ``decode_rate(b)`` seconds. A request of L tokens decodes
    L − 1 steps: its first token comes from its prefill.
    """
    steps = sorted((int(n) - 1 for n, count in lengths.items() for _ in range(count) if int(n) > 1), reverse=True)
    running: list[int] = []  # heap of the step at which each running request finishes
    seconds, step, started = 0.0, 0, 0
    while started < len(steps) or running:
        while started < len(steps) and len(running) < max_num_seqs:
            heapq.heappush(running, step + steps[started])
            started += 1
        batch, until = len(running), running[0]
        seconds += (until - step) * batch / decode_rate(floor, batch)
        step = until
        while running and running[0] == step:
            heapq.heappop(running)
    return seconds


def stage_floors(stages: dict[str, dict[str, Any]], floor: dict[str, Any], max_num_seqs: int = 256) -> dict[str, Any]:
    """Per stage and overall: the floor seconds for its token work and harness seconds ÷ floor.

    Args:
        stages: ``summary.json['stages']``: per stage ``calls``, ``requests``, ``prompt_tokens``,
            ``cached_tokens``, ``generated_tokens``, ``seconds`` and, for generation stages,
            ``generated_lengths``.
        floor: :func:`measure`'s result.
        max_num_seqs: The most requests the engine runs at once.
    """
    out: dict[str, Any] = {}
    for name, st in stages.items():
        if not st.get("calls"):
            continue  # answered from the request store: no engine work
        batch = min(st["requests"] / st["calls"], max_num_seqs)
        uncached = st["prompt_tokens"] - st["cached_tokens"]
        if "generated_lengths" in st:
            decode, how = drain_seconds(st["generated_lengths"], floor, max_num_seqs), "drain"
        elif st["generated_tokens"] == st["requests"]:
            decode, how = 0.0, "drain"  # one token per request (answer scores): all of it prefill
        else:
            decode, how = st["generated_tokens"] / decode_rate(floor, batch), "mean batch"
        prefill = uncached / floor["prefill_tok_s"]
        seconds = prefill + decode
        out[name] = {
            "batch": batch,
            "uncached_prompt_tokens": uncached,
            "generated_tokens": st["generated_tokens"],
            "prefill_floor_s": prefill,
            "decode_floor_s": decode,
            "decode": how,
            "floor_s": seconds,
            "harness_s": st["seconds"],
            "ratio": st["seconds"] / seconds if seconds else None,
        }
    harness, total = sum(s["harness_s"] for s in out.values()), sum(s["floor_s"] for s in out.values())
    return {"stages": out, "harness_s": harness, "floor_s": total, "ratio": harness / total if total else None}


def format_floors(floors: dict[str, Any], floor: dict[str, Any]) -> str:
    """The per-stage table (markdown) and the probe's rates."""
    rates = ", ".join(f"{int(k)}: {v:.0f}" for k, v in sorted(floor["decode_tok_s"].items(), key=lambda kv: int(kv[0])))
    lines = [
        f"prefill {floor['prefill_tok_s']:.0f} tok/s; decode tok/s by batch size {rates}",
        "",
        "| stage | batch | uncached prompt tok | generated tok | harness s | prefill floor s | decode floor s "
        "| floor s | harness ÷ floor |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for name, s in floors["stages"].items():
        decode = f"{s['decode_floor_s']:.1f}" + (" (mean batch)" if s["decode"] != "drain" else "")
        lines.append(
            f"| {name} | {s['batch']:.0f} | {s['uncached_prompt_tokens']:,} | {s['generated_tokens']:,} "
            f"| {s['harness_s']:.1f} | {s['prefill_floor_s']:.1f} | {decode} | {s['floor_s']:.1f} | {s['ratio']:.2f} |"
        )
    lines.append(
        f"| all stages | | | | {floors['harness_s']:.1f} | | | {floors['floor_s']:.1f} | {floors['ratio']:.2f} |"
    )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> dict[str, Any]:
    """Measures the floor for a finished run's folder; prints and writes ``engine_floor.json``."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("run", type=Path, help="a results folder (summary.json, config.json)")
    p.add_argument(
        "engine", nargs="*", help="engine settings to probe instead of the run's, e.g. engine.enforce_eager=true"
    )
    args = p.parse_args(argv)
    from faithfulness.config.fields import build
    from faithfulness.config.sections import ModelSpec
    from faithfulness.engines import load_engine
    from faithfulness.models import resolve_model

    summary = json.loads((args.run / "summary.json").read_text())
    cfg = json.loads((args.run / "config.json").read_text())
    for override in args.engine:  # e.g. the same run's floor compiled and eager
        key, _, value = override.removeprefix("engine.").partition("=")
        cfg["engine"][key] = json.loads(value) if value not in ("", "null") else None
    model = resolve_model(build(ModelSpec, cfg["model"], "model."), cfg["cache_dir"])  # config.json: the plain config
    engine = load_engine(model.path, dict(cfg["engine"]), cfg["cache_dir"])
    try:
        floor = measure(engine)
        floor["max_num_seqs"] = engine.limits()["max_num_seqs"]
    finally:
        engine.close()
    floors = stage_floors(summary["stages"], floor, floor["max_num_seqs"])
    wall = summary["timings"]
    report = {
        "run": str(args.run),
        "model": summary["run"]["model"],
        "cpu": cpu_description(),
        "floor": floor,
        "engine": cfg["engine"],
        "floors": floors,
        "run_timings": wall,
        "load": [round(x, 2) for x in os.getloadavg()],
    }
    suffix = "".join(f"-{o.removeprefix('engine.')}" for o in args.engine)
    (args.run / f"engine_floor{suffix}.json").write_text(json.dumps(report, indent=2))
    print(
        f"{summary['run']['model']} · CPU {report['cpu']['model']}, {report['cpu']['cores']} cores, "
        f"AVX-512 {'yes' if report['cpu']['avx512'] else 'no'}"
    )
    print(format_floors(floors, floor))
    return report


if __name__ == "__main__":
    main()
