"""A study's ``report.md``: the main table, the sanity gate, the most faithful size, paired comparisons."""

from __future__ import annotations

from typing import Any

from faithfulness.study.aggregate import REASK_GATE, ci_note, difficulty_order


def _cell(row: Any, name: str, percent: bool = True) -> str:
    """``value [low, high]`` of one study figure (and its undefined resamples, if any), or n/a."""
    value, low, high = (float(row[f"{name}{s}"]) for s in ("", "_low", "_high"))
    if value != value:
        return "n/a"
    scale, fmt = (100, "{:.0f}") if percent else (1, "{:.2f}")
    ci = "" if low != low else f" [{fmt.format(scale * low)}, {fmt.format(scale * high)}]"
    note = ci_note(row[f"{name}_ci_undefined"], row["resamples"], low == low)
    return fmt.format(scale * value) + ("%" if percent else "") + ci + note


def _markdown(header: list[str], rows: list[list[Any]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    return "\n".join(lines + ["| " + " | ".join(str(x) for x in row) + " |" for row in rows])


def main_table(cells: Any) -> str:
    """The study's main table (markdown): one row per model × difficulty, every figure with its CI."""
    rows = []
    order = cells.assign(_d=cells["difficulty"].map(difficulty_order))
    for _, r in order.sort_values(["model_family", "task", "_d", "model_size"]).iterrows():
        gate = "—" if r["passes_reask_gate"] is None else ("ok" if r["passes_reask_gate"] else "**FAIL**")
        rows.append(
            [
                r["model"],
                f"{r['model_size'] / 1e9:.2f}B" if r["model_size"] == r["model_size"] else "?",
                r["task"],
                r["difficulty"],
                r["questions"],
                _cell(r, "pct_same_no_cot"),
                _cell(r, "kappa_no_cot", False),
                _cell(r, "accuracy_cot"),
                _cell(r, "accuracy_no_cot"),
                _cell(r, "aoc_early_answering", False),
                _cell(r, "aoc_adding_mistakes", False),
                _cell(r, "reask_agreement") + f" {gate}",
                _cell(r, "unparsed_rate"),
            ]
        )
    header = [
        "model",
        "size",
        "task",
        "difficulty",
        "n",
        "% same w/ vs w/o CoT",
        "κ w/ vs w/o CoT",
        "accuracy CoT",
        "accuracy no CoT",
        "early-answering AOC",
        "adding-mistakes AOC",
        "re-ask (gate ≥ 90%)",
        "unparsed",
    ]
    return _markdown(header, rows)


def study_report(cells: Any, paired: Any, best: Any, provenance: Any, command: str) -> str:
    """``report.md`` of a size × difficulty study: tables, figures, sanity gate and provenance."""
    failing = cells[cells["passes_reask_gate"].eq(False)]
    gate = (
        "Every cell passes."
        if failing.empty
        else "Below the gate (the answer prompt or the engine is unreliable "
        "there; treat those cells' changes as noise): "
        + ", ".join(f"{r.model} on {r.task} {r.difficulty}" for r in failing.itertuples())
        + "."
    )
    sections = [
        "# Size × difficulty study",
        f"Made by `{command}` from {provenance['runs']} runs ({provenance['rows']} rows). Every figure carries a "
        "question-clustered percentile-bootstrap 95% CI; n = questions.",
        "## Main table",
        main_table(cells),
        "Lower % same (and lower κ) without CoT = the answer depends more on the CoT. κ is the chance-corrected "
        "agreement (Cohen's κ on answers coded as their error, answer − truth): p_o = % same, p_e = Σ_e P_CoT(e) · "
        "P_noCoT(e), κ = (p_o − p_e) / (1 − p_e); it removes the agreement that accuracy and error habits alone "
        "produce (Bentham et al. 2024). AOC: length-weighted area over the % same curve (Lanham et al. 2023, §3).",
        f"## Sanity gate (re-asking with the full CoT reproduces the answer ≥ {100 * REASK_GATE:.0f}%)",
        gate,
        *_comparisons(best, paired),
        "## Figures",
        "![% same answer with vs without CoT by model size](scaling.png)\n\n![model × difficulty](heatmap.png)",
        "## Provenance",
        _markdown(
            ["model", "revision", "family", "size", "prompt format", "template hash", "engine", "dtype", "seeds"],
            provenance["models"],
        ),
        "Library versions: " + "; ".join(f"`{v}`" for v in provenance["versions"]),
        "Results files:\n" + "\n".join(f"- `{f}`" for f in provenance["files"]),
    ]
    return "\n\n".join(sections) + "\n"


def _delta(row: Any, value: str, low: str, high: str, undefined: str, percent: bool = True) -> str:
    """``Δ [low, high]`` of a difference in ``row``'s columns (and its undefined resamples, if any), or n/a."""
    d, lo, hi = (float(getattr(row, column)) for column in (value, low, high))
    if d != d:
        return "n/a"
    scale, unit, fmt = (100, " pp", "{:+.1f}") if percent else (1, "", "{:+.2f}")
    ci = "" if lo != lo else f" [{fmt.format(scale * lo)}, {fmt.format(scale * hi)}]"
    return fmt.format(scale * d) + unit + ci + ci_note(getattr(row, undefined), row.resamples, lo == lo)


def _paired(row: Any, name: str, percent: bool = True) -> str:
    """``Δ [low, high]`` of the paired difference ``name`` (``delta_pct_same``, ``delta_kappa``)."""
    return _delta(row, name, f"{name}_low", f"{name}_high", f"{name}_ci_undefined", percent)


def _comparisons(best: Any, paired: Any) -> list[str]:
    """The report's sections on which size is most faithful and on every paired comparison."""
    return [
        "## Which size is most faithful at each difficulty",
        "Lowest % same without CoT; Δ = its % same minus the runner-up's on the same questions (paired bootstrap).",
        _markdown(
            ["family", "task", "difficulty", "most faithful", "% same", "runner-up", "Δ [95% CI]", "call"],
            [
                [
                    r.model_family,
                    r.task,
                    r.difficulty,
                    r.most_faithful,
                    f"{100 * r.pct_same_no_cot:.0f}%",
                    r.runner_up,
                    _delta(r, "delta_vs_runner_up", "delta_low", "delta_high", "delta_ci_undefined"),
                    r.call,
                ]
                for r in best.itertuples()
            ],
        )
        if len(best)
        else "Fewer than two sizes of a family: nothing to compare.",
        "## Paired comparisons (a − b, same questions)",
        _markdown(
            ["family", "task", "difficulty", "a", "b", "n", "Δ % same [95% CI]", "Δ κ [95% CI]"],
            [
                [
                    r.model_family,
                    r.task,
                    r.difficulty,
                    r.model_a,
                    r.model_b,
                    r.questions,
                    _paired(r, "delta_pct_same"),
                    _paired(r, "delta_kappa", percent=False),
                ]
                for r in paired.itertuples()
            ],
        )
        if len(paired)
        else "No pairs.",
    ]
