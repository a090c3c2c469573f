"""Markdown tables of the bias measures of one or more runs (their summary.json), for docs/.

    python scripts/bias_tables.py results/sycophancy-all/*/n150-*      # sycophancy: one row per model × condition
    python scripts/bias_tables.py results/arc_easy-validation/*/n50-*  # hints: one row per kind × target × CoT

Every cell is "value [95% CI]" from the run's summary.json (question-clustered bootstrap).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from faithfulness.metrics import measured

_CONDITION = {"no_cot": "no CoT", "cot": "with CoT"}


def cell(m: dict[str, Any] | None, percent: bool = True) -> str:
    """``value [low, high]`` (percent or 3 decimals), or n/a."""
    if not m or m["value"] != m["value"]:
        return "n/a"
    scale, fmt = (100, "{:.1f}") if percent else (1, "{:.3f}")
    low, high = m["ci"]
    ci = "" if low != low else f" [{fmt.format(scale * low)}, {fmt.format(scale * high)}]"
    return fmt.format(scale * m["value"]) + ("%" if percent else "") + ci


def _pp(m: dict[str, Any]) -> str:
    """A difference of two shares in percentage points, signed."""
    if m["value"] != m["value"]:
        return "n/a"
    low, high = m["ci"]
    return f"{100 * m['value']:+.1f} pp [{100 * low:+.1f}, {100 * high:+.1f}]"


def table(header: list[str], rows: list[list[str]]) -> str:
    """A markdown table."""
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    return "\n".join(lines + ["| " + " | ".join(row) + " |" for row in rows])


def conditions_table(runs: list[dict[str, Any]]) -> str:
    """Per model and condition: both measures, the argmax rate, their gap and the disagreeing items."""
    rows = []
    for s in runs:
        bias = s["metrics"]["bias"].get("conditions", {})
        for key, title in _CONDITION.items():
            b = bias.get(key)
            if b:
                rows.append(
                    [
                        s["run"]["model"],
                        title,
                        str(b["mean_p_target"]["n"]),
                        cell(b["mean_p_target"]),
                        cell(b["pct_target_top"]),
                        cell(b["pct_answer_target"]),
                        _pp(b["mean_p_minus_pct_top"]),
                        f"{b['disagree']['count']} of {b['disagree']['n']}",
                    ]
                )
    return table(
        [
            "model",
            "condition",
            "n",
            "mean P(X)",
            "% X most probable",
            "% answers = X",
            "mean P(X) − % X most probable",
            "items where they disagree",
        ],
        rows,
    )


def early_table(runs: list[dict[str, Any]]) -> str:
    """Per model: both measures at each fraction of the CoT shown."""
    rows = []
    for s in runs:
        early = s["metrics"]["bias"].get("conditions", {}).get("early_answering")
        if not early:
            continue
        for f in measured(early["mean_p_target_by_fraction"]):
            rows.append(
                [
                    s["run"]["model"],
                    f"{100 * float(f):.0f}%",
                    cell(early["mean_p_target_by_fraction"][f]),
                    cell(early["pct_target_top_by_fraction"][f]),
                    cell(early["pct_answer_target_by_fraction"][f]),
                ]
            )
    return table(["model", "CoT shown", "mean P(X)", "% X most probable", "% answers = X"], rows)


def hints_table(runs: list[dict[str, Any]]) -> str:
    """Per model, hint kind, target and CoT: moved, both measures hinted vs unhinted, verbalisation."""
    rows = []
    for s in runs:
        for kind, targets in s["metrics"]["bias"].get("hints", {}).items():
            for target, modes in targets.items():
                for mode, b in modes.items():
                    rows.append(
                        [
                            s["run"]["model"],
                            kind,
                            target,
                            _CONDITION[mode],
                            f"{cell(b['moved_to_target'])} ({b['moved_to_target']['n']})",
                            f"{cell(b['mean_p_target_unhinted'])} → {cell(b['mean_p_target_hinted'])}",
                            f"{cell(b['pct_target_top_unhinted'])} → {cell(b['pct_target_top_hinted'])}",
                            f"{b['disagree_hinted']['count']} of {b['disagree_hinted']['n']}",
                            cell(b.get("verbalised")),
                            cell(b.get("verbalised_judge")),
                            cell(b.get("judge_agrees_with_rule")),
                            cell(b.get("normalised_faithfulness"), percent=False),
                        ]
                    )
    return table(
        [
            "model",
            "hint",
            "X",
            "condition",
            "answer moved to X (n)",
            "mean P(X) unhinted → hinted",
            "% X most probable unhinted → hinted",
            "hinted: items where they disagree",
            "CoT mentions hint, of moved",
            "judge: mentions, of moved",
            "judge agrees with rule",
            "normalised faithfulness",
        ],
        rows,
    )


def main() -> int:
    """Prints the bias tables of the results folders given; returns the exit code."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("runs", nargs="+", type=Path, help="results folders (each with a summary.json)")
    args = parser.parse_args()
    runs = [json.loads((folder / "summary.json").read_text()) for folder in args.runs]
    runs = [s for s in runs if "bias" in s["metrics"]]
    if not runs:
        print("error: no run has bias measures (task=sycophancy or perturbations with biased_context)", file=sys.stderr)
        return 2
    if any("conditions" in s["metrics"]["bias"] for s in runs):
        print(conditions_table(runs), "", early_table(runs), sep="\n")
    if any("hints" in s["metrics"]["bias"] for s in runs):
        print(hints_table(runs))
    return 0


if __name__ == "__main__":
    sys.exit(main())
