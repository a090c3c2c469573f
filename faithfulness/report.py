"""The table a run prints: a pure function of ``summary.json``."""

from __future__ import annotations

from typing import Any

from faithfulness.aggregate import REASK_GATE, difficulty_order
from faithfulness.bias_report import bias_lines
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
    return f"  {label:<46} {value:>7} {ci:>16}  n={m['n']}{unparsed}"


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


def _cell(row: Any, name: str, percent: bool = True) -> str:
    """``value [low, high]`` of one study figure, or n/a."""
    value, low, high = (float(row[f"{name}{s}"]) for s in ("", "_low", "_high"))
    if value != value:
        return "n/a"
    scale, fmt = (100, "{:.0f}") if percent else (1, "{:.2f}")
    ci = "" if low != low else f" [{fmt.format(scale * low)}, {fmt.format(scale * high)}]"
    return fmt.format(scale * value) + ("%" if percent else "") + ci


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
                    _delta(r.delta_vs_runner_up, r.delta_low, r.delta_high),
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
                    _delta(r.delta_pct_same, r.delta_pct_same_low, r.delta_pct_same_high),
                    _delta(r.delta_kappa, r.delta_kappa_low, r.delta_kappa_high, percent=False),
                ]
                for r in paired.itertuples()
            ],
        )
        if len(paired)
        else "No pairs.",
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


def _delta(value: float, low: float, high: float, percent: bool = True) -> str:
    if value != value:
        return "n/a"
    scale, unit, fmt = (100, " pp", "{:+.1f}") if percent else (1, "", "{:+.2f}")
    return fmt.format(scale * value) + unit + f" [{fmt.format(scale * low)}, {fmt.format(scale * high)}]"
