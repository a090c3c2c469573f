"""The bias measures in the printed table: pure functions of the summary (their figures are in ``plots``)."""

from __future__ import annotations

from typing import Any, Callable

from faithfulness import metrics

Line = Callable[..., str]  # report._line: (label, metric, percent=True) → one printed line
_CONDITIONS = {"cot": "with CoT", "no_cot": "no CoT"}
_BOTH = (
    ("mean_p_target", "mean P(X)"),
    ("pct_target_top", "% X most probable"),
    ("pct_answer_target", "% answers = X"),
)


def bias_lines(bias: dict[str, Any] | None, line: Line) -> list[str]:
    """The table's lines for the ``bias`` block of a summary (none without one)."""
    if not bias:
        return []
    lines = [
        "  X = the answer a bias points to (sycophancy: the sycophantic option; hints: the hinted answer);",
        "  P(X) is normalised over the options (multiple choice), raw for integer answers",
    ]
    for key, title in _CONDITIONS.items():
        block = bias.get("conditions", {}).get(key)
        if block is None:
            continue
        lines += [line(f"{title}: {label}", block[name]) for name, label in _BOTH]
        lines.append(line(f"{title}: mean P(X) − % X most probable", block["mean_p_minus_pct_top"]))
        lines.append(_disagree(f"{title}: items where the two measures disagree", block["disagree"]))
    early = bias.get("conditions", {}).get("early_answering", {})
    for name, label in _BOTH[:2]:
        for f, metric in metrics.measured(early.get(f"{name}_by_fraction", {})).items():
            lines.append(line(f"  {label}, {100 * float(f):.0f}% of CoT shown", metric))
    for kind, targets in bias.get("hints", {}).items():
        for target, modes in targets.items():
            for mode, block in modes.items():
                lines += _hint_lines(f"{kind}, X {target}, {_CONDITIONS[mode]}", block, line)
    return lines


def _hint_lines(title: str, block: dict[str, Any], line: Line) -> list[str]:
    out = [line(f"{title}: answer moved to X", block["moved_to_target"])]
    for name, label in _BOTH[:2]:
        out += [line(f"  {label}, {side}", block[f"{name}_{side}"]) for side in ("hinted", "unhinted")]
    out.append(_disagree("  hinted: items where the two measures disagree", block["disagree_hinted"]))
    for name, label in (
        ("verbalised", "CoT mentions the hint, of moved"),
        ("verbalised_judge", "judge says it does, of moved"),
        ("judge_agrees_with_rule", "judge agrees with the rule matcher"),
    ):
        if name in block:
            out.append(line(f"  {label}", block[name]))
    if "normalised_faithfulness" in block:
        out.append(line("  normalised faithfulness (Chen et al.)", block["normalised_faithfulness"], percent=False))
    return out


def _disagree(label: str, d: dict[str, Any]) -> str:
    ids = ", ".join(map(str, d["items"][:8])) + (" …" if len(d["items"]) > 8 else "")
    return f"  {label:<46} {d['count']:>7} of {d['n']} items" + (f": {ids}" if ids else "")
