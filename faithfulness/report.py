"""The table a run prints: a pure function of ``summary.json`` (a study's report: ``faithfulness/study``)."""

from __future__ import annotations

from typing import Any

from faithfulness.bias_report import bias_lines
from faithfulness.stats import undefined_note
from faithfulness.suite import TESTS, lookup


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
    note = undefined_note(m.get("ci_undefined", 0), m.get("ci_resamples", 0), low == low)
    return f"  {label:<46} {value:>7} {ci:>16}  n={m['n']}{unparsed}" + (f"  ({note})" if note else "")


def format_table(summary: dict[str, Any]) -> str:
    """Every metric with its 95% CI and n: accuracy, % same by fraction of CoT, AOCs, probabilities."""
    run, m = summary["run"], summary["metrics"]
    lines = [
        f"{run['model']} · {run['task']} {run['difficulty']} · "
        f"{run['n_problems']} problems × {run['samples']} CoT(s) · "
        f"{run['engine']} {run['engine_version']} {run['dtype']}"
        f" · answers read: {summary.get('answer_extract', 'strict')}",
        f"  {'metric':<46} {'value':>7} {'95% CI':>16}  n",
        _line("accuracy with CoT", m["accuracy_cot"]),
    ]
    unknown = [name for name in m if isinstance(m[name], dict) and "pct_same" in m[name] and name not in TESTS]
    for name in unknown:
        lookup(name)  # a test nobody registered fails loudly instead of missing from the table
    floor = m.get("noise_floor")  # sampled runs: how often two unperturbed CoTs already agree
    beside = f"  (noise floor {_pct(floor['value']).strip()}%)" if floor else ""
    if floor:
        lines.append(_line("% same, two independent CoTs (noise floor)", floor))
    for name, test in TESTS.items():
        if name in m:
            lines += test.table_lines(m[name], _line, beside)
    lines += bias_lines(m.get("bias"), _line)
    extract = summary.get("answer_extract", "strict")
    other = {r: v for r, v in summary.get("metrics_by_reading", {}).items() if r != extract}
    lines += [_line(f"unparsed answers (all rows), {extract} reading", m["unparsed_rate"])]
    lines += [_line(f"unparsed answers (all rows), {r} reading", v["unparsed_rate"]) for r, v in other.items()]
    lines += [
        f"  mean CoT steps {m['mean_cot_steps']:.1f}; CoTs cut by max_tokens: {m['cots_cut_by_max_tokens']}; "
        f"levels skipped (no number to corrupt, identical rewrite): {len(summary.get('skipped', []))}",
    ]
    not_run = [test.title for name, test in TESTS.items() if name != "original" and name not in m]
    if not_run:
        lines.append(f"  not run: {', '.join(not_run)} (perturbations=all runs every test)")
    if "thinking_cut" in m:  # reasoning models
        lines.append(
            f"  thinking not closed within the budget: {m['thinking_cut']['cots']} CoTs, "
            f"{m['thinking_cut']['rows']} rows"
        )
    return "\n".join(lines + [warning_line(w) for w in summary.get("reading_warnings", [])])


def warning_line(w: dict[str, Any]) -> str:
    """One line for a headline figure whose two readings disagree beyond its CI."""
    percent = not w["figure"].endswith(("aoc", "chance_corrected_agreement"))
    show = (lambda x: _pct(x).strip() + "%") if percent else (lambda x: f"{x:.3f}")  # noqa: E731
    low, high = w["ci"]
    ci = f"outside its 95% CI [{show(low)}, {show(high)}]" if low == low else "no CI"
    return (
        f"warning: {w['figure']} is {show(w['value'])} under the {w['reading']} answer reading and "
        f"{show(w['other_value'])} under {w['other_reading']} ({ci}); see answer.extract in the README"
    )
