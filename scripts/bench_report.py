"""The numbers of ``scripts/bench.py``: per-stage comparison, overall ratios, targets, printed tables."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from engine_floor import format_floors, stage_floors

# what each engine stage of the pipeline does, in the words of issue 7
STAGE_LABELS = {
    "chains of thought": "CoT generation",
    "rewrites": "paraphrase (model-written rewrites)",
    "regenerations": "mistake + paraphrase continuation",
    "forced answers": "forced answers (all tests + no-CoT)",
    "answer scores": "answer scores (teacher-forced)",
}
TARGETS = {  # issue 7, on a 2-core CPU with Qwen2.5-Coder-0.5B, n=100
    "speedup_excluding_engine_start": (">=", 25.0),
    "speedup_including_engine_start": (">=", 10.0),
    "forced_answer_cache_share": (">=", 0.80),
    "overhead_share_of_engine_time": ("<=", 0.10),
    "early_answering_exponent": ("<=", 1.2),
    "harness_over_engine_floor": ("<=", 1.5),  # issue 15: the stages' time ÷ pure batched vLLM time for their tokens
}


def evaluate(report: dict[str, Any]) -> dict[str, Any]:
    """Per-stage harness vs naive figures, overall ratios and the issue's targets, from measured times."""
    harness, naive = report["harness"], report["naive"]
    stages = {}
    for name, h in harness["stages"].items():
        n = naive["stages"].get(name, {})
        stages[name] = {
            "label": STAGE_LABELS.get(name, name),
            "harness": {
                **h,
                "cache_share": h["cached_tokens"] / h["prompt_tokens"] if h["prompt_tokens"] else 0.0,
                "generated_tok_s": h["generated_tokens"] / h["seconds"] if h["seconds"] else 0.0,
                "processed_tok_s": (h["prompt_tokens"] - h["cached_tokens"] + h["generated_tokens"]) / h["seconds"]
                if h["seconds"]
                else 0.0,
            },
            "naive": n,
            "ratio": n["seconds"] / h["seconds"] if n and h["seconds"] else None,
            "cpu_ratio": n["cpu_seconds"] / harness["stage_cpu_s"][name]
            if n and harness["stage_cpu_s"].get(name)
            else None,
        }
        stages[name]["harness"]["cpu_seconds"] = harness["stage_cpu_s"].get(name, 0.0)
    engine_s = sum(h["seconds"] for h in harness["stages"].values())
    naive_s = sum(n["seconds"] for n in naive["stages"].values())
    naive_cpu = sum(n["cpu_seconds"] for n in naive["stages"].values())
    forced = harness["stages"].get("forced answers", {})
    summary = {
        "stages": stages,
        "harness_engine_s": engine_s,
        "harness_overhead_s": harness["wall_s"] - engine_s,
        "overhead_share_of_engine_time": (harness["wall_s"] - engine_s) / engine_s if engine_s else None,
        "naive_s": naive_s,
        "speedup_excluding_engine_start": naive_s / harness["wall_s"],
        "speedup_including_engine_start": (naive_s + naive["start_s"])
        / (harness["wall_s"] + harness["engine_start_s"]),
        "naive_cpu_s": naive_cpu,
        "cpu_speedup_excluding_engine_start": naive_cpu / harness["cpu_s"],
        "cpu_speedup_including_engine_start": (naive_cpu + naive["start_cpu_s"])
        / (harness["cpu_s"] + harness["engine_start_cpu_s"]),
        "forced_answer_cache_share": forced["cached_tokens"] / forced["prompt_tokens"]
        if forced.get("prompt_tokens")
        else None,
        "early_answering_exponent": report["scaling"]["exponent_time"],
        "peak_rss_gib": max(report["peak_rss_gib"].values(), default=None),
    }
    summary["harness_over_engine_floor"] = None  # reports before the floor was measured have none
    floor = report.get("engine_floor")
    if floor:
        summary["engine_floor"] = stage_floors(harness["stages"], floor, floor.get("max_num_seqs", 256))
        # the whole harness (its own overhead included) over the floor of all stages' token work
        summary["harness_over_engine_floor"] = harness["wall_s"] / summary["engine_floor"]["floor_s"]
        # the speedup a harness exactly at the floor would show: what this machine allows against the reference
        summary["naive_over_engine_floor"] = naive_s / summary["engine_floor"]["floor_s"]
        for name, st in summary["engine_floor"]["stages"].items():
            st["naive_over_floor"] = (
                naive["stages"][name]["seconds"] / st["floor_s"] if name in naive["stages"] else None
            )
    summary["targets"] = {
        key: {
            "value": summary[key],
            "target": f"{op} {bound:g}",
            "met": summary[key] is not None and (summary[key] >= bound if op == ">=" else summary[key] <= bound),
        }
        for key, (op, bound) in TARGETS.items()
    }
    return summary


def format_report(report: dict[str, Any]) -> str:
    """The per-stage table, the overall lines and the targets, as printed."""
    s, h, n, m = report["summary"], report["harness"], report["naive"], report["machine"]
    lines = [
        (
            f"model {report['model']}, n={report['n']}, samples={report['samples']}, "
            f"load before/after {m['load_before']} / {m['load_after']}"
        ),
        "",
        (
            "| stage | way | requests | prompt tok | cached tok | generated tok | wall s | gen tok/s "
            "| computed tok/s | naive/harness | CPU s | naive/harness CPU |"
        ),
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for name, st in s["stages"].items():
        a, b = st["harness"], st["naive"]
        lines.append(
            f"| {st['label']} | harness | {a['requests']:,} | {a['prompt_tokens']:,} | {a['cached_tokens']:,} "
            f"({a['cache_share']:.0%}) | {a['generated_tokens']:,} | {a['seconds']:.1f} | {a['generated_tok_s']:.1f} "
            f"| {a['processed_tok_s']:.1f} | | {a['cpu_seconds']:.1f} | |"
        )
        if b.get("sampled"):
            agree = f"; same text {b['agreement']:.0%}" if b.get("agreement") is not None else ""
            agree += f", same answer {b['answer_agreement']:.0%}" if b.get("answer_agreement") is not None else ""
            unit = " score requests" if name == "answer scores" else ""
            lines.append(
                f"| | naive ({b['sampled']}/{b['requests']}{unit} replayed{agree}) | {b['requests']:,} | "
                f"{b['prompt_tokens']:,.0f} | 0 | {b['generated_tokens']:,.0f} | {b['seconds']:.1f} "
                f"(measured {b['measured_seconds']:.1f}) | {b['generated_tok_s']:.1f} | {b['processed_tok_s']:.1f} "
                f"| **{st['ratio']:.1f}×** | {b['cpu_seconds']:.1f} | {st['cpu_ratio']:.1f}× |"
            )
    cache, sc = report["forced_answer_cache"], report["scaling"]
    per_test = ", ".join(
        f"{k} {v['cache_share']:.0%} ({v['uncached_tokens_per_prompt']:.0f} uncached/prompt)"
        for k, v in cache["per_test"].items()
    )
    lines += [
        "",
        (
            f"engine start {h['engine_start_s']:.1f} s (naive model load {n['start_s']:.1f} s); "
            f"harness wall {h['wall_s']:.1f} s"
            f" = engine {s['harness_engine_s']:.1f} s + own overhead {s['harness_overhead_s']:.1f} s "
            f"({s['overhead_share_of_engine_time']:.1%} of engine time)"
        ),
        f"naive (extrapolated per stage: {n['method']}) {s['naive_s']:.1f} s",
        (
            f"overall naive/harness: {s['speedup_excluding_engine_start']:.1f}× excluding engine start, "
            f"{s['speedup_including_engine_start']:.1f}× including it (wall time); in CPU time (less load-dependent) "
            f"{s['cpu_speedup_excluding_engine_start']:.1f}× and {s['cpu_speedup_including_engine_start']:.1f}×"
        ),
        (
            f"CPU: engine start {h['engine_start_cpu_s']:.1f} s, harness {h['cpu_s']:.1f} s, "
            f"naive {s['naive_cpu_s']:.1f} s "
            f"(+ {n['start_cpu_s']:.1f} s model load)"
        ),
        (
            f"forced-answer prefix cache: {s['forced_answer_cache_share']:.1%} read; "
            f"ceiling {cache['ceiling_this_block_size']:.1%}"
            f" at block size {cache['block_size']} ({cache['ceiling_any_block']:.1%} at block size 1): each of the "
            f"{cache['unique_prompts']} distinct prompts computes its {cache['suffix_tokens']}-token answer suffix"
        ),
        f"  per test: {per_test}",
        (
            f"early answering cost ∝ CoT length^b: b = {sc['exponent_time']:.2f} (time), "
            f"{sc['exponent_computed_prompt_tokens']:.2f} (prompt tokens computed), "
            f"{sc['exponent_prompt_tokens_without_cache']:.2f} (prompt tokens without a cache)"
        ),
        "  " + ", ".join(f"{p['steps']:.0f} steps: {p['seconds']:.2f} s" for p in sc["points"]),
        (
            f"peak RSS (this process + engine) GiB per phase: {report['peak_rss_gib']}; "
            f"results table {h['results_table_bytes'] / 2**20:.1f} MiB"
        ),
        "",
    ]
    if s.get("engine_floor"):
        lines += [
            "engine floor (pure batched vLLM on random prompts, same model and settings; scripts/engine_floor.py):",
            format_floors(s["engine_floor"], report["engine_floor"]),
            f"harness wall {h['wall_s']:.1f} s ÷ floor {s['engine_floor']['floor_s']:.1f} s = "
            f"{s['harness_over_engine_floor']:.2f}",
            (
                f"naive ÷ floor = {s['naive_over_engine_floor']:.1f}× ("
                + ", ".join(
                    f"{name} {st['naive_over_floor']:.1f}×"
                    for name, st in s["engine_floor"]["stages"].items()
                    if st.get("naive_over_floor")
                )
                + "): the most a harness at the floor shows on this machine"
            ),
            "",
        ]
    lines += ["targets:"]
    for key, t in s["targets"].items():
        value = "n/a" if t["value"] is None else f"{t['value']:.3g}"
        lines.append(f"  {'met ' if t['met'] else 'MISS'} {key} = {value} (target {t['target']})")
    return "\n".join(lines)


def markdown_line(report: dict[str, Any], json_path: Path) -> tuple[str, str]:
    """The header of ``docs/benchmarks.md`` and this run's line in it."""
    header = (
        "| date (UTC) | model | n × samples | load 1-min before/after | engine start s | harness s | naive s "
        "(extrapolated) | × excl. start | × incl. start | × CPU time excl. / incl. | forced-answer cache (ceiling) | "
        "overhead / engine | early-answering exponent | peak RSS GiB | report | harness ÷ engine floor | CPU |\n"
        "|---|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|---:|---|\n"
    )
    s, h, m = report["summary"], report["harness"], report["machine"]
    ratio = "n/a" if s["harness_over_engine_floor"] is None else f"{s['harness_over_engine_floor']:.2f}"
    c = m.get("cpu")
    cpu = f"{c['model']}, {c['cores']} cores, AVX-512 {'yes' if c['avx512'] else 'no'}" if c else "n/a"
    line = (
        f"| {report['when'][:16].replace('T', ' ')} | {report['model']} | {report['n']} × {report['samples']} | "
        f"{m['load_before'][0]} / {m['load_after'][0]} | {h['engine_start_s']:.1f} | {h['wall_s']:.1f} | "
        f"{s['naive_s']:.0f} | {s['speedup_excluding_engine_start']:.1f} | {s['speedup_including_engine_start']:.1f} | "
        f"{s['cpu_speedup_excluding_engine_start']:.1f} / {s['cpu_speedup_including_engine_start']:.1f} | "
        f"{s['forced_answer_cache_share']:.1%} ({report['forced_answer_cache']['ceiling_this_block_size']:.1%}) | "
        f"{s['overhead_share_of_engine_time']:.1%} | "
        f"{s['early_answering_exponent']:.2f} | {s['peak_rss_gib']:.2f} | {json_path.name} | {ratio} | {cpu} |\n"
    )
    return header, line
