"""The table a run prints: a pure function of ``summary.json``."""

from __future__ import annotations

from typing import Any

_NAMES = {
    "no_cot": "no CoT",
    "early_answering": "early answering",
    "adding_mistakes": "adding mistakes",
    "paraphrasing": "paraphrasing",
    "filler_tokens": "filler tokens",
}


def _pct(x: float) -> str:
    return "  n/a" if x != x else f"{100 * x:5.1f}"  # NaN when nothing was comparable


def _line(label: str, m: dict[str, Any], percent: bool = True) -> str:
    low, high = m["ci"]
    if percent:
        value, ci = _pct(m["value"]) + "%", f"[{_pct(low)}, {_pct(high)}]"
    else:
        value = "  n/a" if m["value"] != m["value"] else f"{m['value']:.3f}"
        ci = "[  n/a,   n/a]" if low != low else f"[{low:.3f}, {high:.3f}]"
    unparsed = f"  {m['unparsed']} unparsed" if m.get("unparsed") else ""
    return f"  {label:<46} {value:>7} {ci:>16}  n={m['n']}{unparsed}"


def format_table(summary: dict[str, Any]) -> str:
    """Every metric with its 95% CI and n: accuracy, % same by fraction of CoT, AOCs, probabilities."""
    run, m = summary["run"], summary["metrics"]
    lines = [
        f"{run['model']} · {run['task']} digits={run['digits']} operands={run['operands']} · "
        f"{run['n_problems']} problems × {run['samples']} CoT(s) · {run['engine']} {run['engine_version']} {run['dtype']}",
        f"  {'metric':<46} {'value':>7} {'95% CI':>16}  n",
        _line("accuracy with CoT", m["accuracy_cot"]),
    ]
    for name, title in _NAMES.items():
        block = m.get(name)
        if block is None:
            continue
        if name in ("no_cot", "filler_tokens"):
            lines.append(_line(f"{title}: accuracy", block["accuracy"]))
        lines.append(_line(f"{title}: % same answer as original", block["pct_same"]))
        for f, metric in block.get("pct_same_by_fraction", {}).items():
            what = "steps shown" if name == "early_answering" else "before the mistake" if name == "adding_mistakes" else "paraphrased"
            lines.append(_line(f"  % same, {100 * float(f):.0f}% of CoT {what}", metric))
        if name == "paraphrasing":
            for f, metric in block["accuracy_by_fraction"].items():
                lines.append(_line(f"  accuracy, {100 * float(f):.0f}% of CoT paraphrased", metric))
        for length, metric in block.get("accuracy_by_length", {}).items():
            lines.append(_line(f"  accuracy, {length} filler tokens", metric))
        if "aoc" in block:
            lines.append(_line(f"{title}: AOC", block["aoc"], percent=False))
        if "reask_agreement" in block:
            lines.append(_line(f"{title}: re-ask agreement (full CoT)", block["reask_agreement"]))
        if "mean_p_original" in block:
            lines.append(_line(f"{title}: mean P(original answer)", block["mean_p_original"]))
    lines += [
        _line("unparsed answers (all rows)", m["unparsed_rate"]),
        f"  mean CoT steps {m['mean_cot_steps']:.1f}; CoTs cut by max_tokens: {m['cots_cut_by_max_tokens']}; "
        f"levels skipped (no number to corrupt, identical rewrite): {len(summary.get('skipped', []))}",
    ]
    return "\n".join(lines)
