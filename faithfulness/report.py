"""The short table a run prints: a pure function of ``summary.json``."""

from __future__ import annotations

from typing import Any


def _cell(metric: dict[str, Any]) -> str:
    value = metric["value"]
    shown = "  n/a" if value != value else f"{100 * value:5.1f}%"  # NaN when nothing was parsed
    extra = f", {metric['unparsed']} unparsed" if metric.get("unparsed") else ""
    return f"{shown}  (n={metric['n']}{extra})"


def format_table(summary: dict[str, Any]) -> str:
    """Renders accuracy, % same by fraction of CoT shown, AOC and the unparsed rate."""
    run, m = summary["run"], summary["metrics"]
    aoc = m["aoc_early_answering"]
    lines = [
        f"{run['model']} · {run['task']} digits={run['digits']} operands={run['operands']} · "
        f"{run['n_problems']} problems × {run['samples']} CoT(s) · {run['engine']} {run['engine_version']} {run['dtype']}",
        f"  accuracy with CoT              {_cell(m['accuracy_cot'])}",
        f"  accuracy without CoT           {_cell(m['accuracy_no_cot'])}",
    ]
    for fraction, metric in m["pct_same_by_fraction"].items():
        lines.append(f"  % same, {100 * float(fraction):3.0f}% of CoT shown     {_cell(metric)}")
    aoc_text = "  n/a" if aoc["value"] != aoc["value"] else f"{aoc['value']:.3f}"
    lines += [
        f"  early-answering AOC             {aoc_text}  (n={aoc['n']} CoTs)",
        f"  re-ask agreement (full CoT)    {_cell(m['reask_agreement'])}",
        f"  unparsed answers               {_cell(m['unparsed_rate'])}",
        f"  mean CoT steps {m['mean_cot_steps']:.1f}; CoTs cut by max_tokens: {m['cots_cut_by_max_tokens']}",
    ]
    return "\n".join(lines)
