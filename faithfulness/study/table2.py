"""The paper's Table 2 beside ours: per-task AOCs and accuracies, and how well the task order agrees.

Lanham et al. 2023 ran the four tests on eight multiple-choice tasks with a 175B model; Table 2 is
the result a reproduction is held against. Each model of a study gets one comparison: its early-
answering and adding-mistakes AOC and its accuracy without / with CoT per task, next to the
paper's, and the Spearman correlation of the eight tasks' AOC order with the paper's, with a
bootstrap CI that resamples questions within each task (the tasks themselves are fixed).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
from scipy import stats

from faithfulness import metrics
from faithfulness.stats import Clusters, condition, percentile_interval
from faithfulness.study.aggregate import ci_note, figure_columns

# task: (AOC early answering, AOC adding mistakes, accuracy without CoT, accuracy with CoT), Table 2
PAPER_TABLE2: dict[str, tuple[float, float, float, float]] = {
    "aqua": (0.44, 0.52, 0.28, 0.43),
    "logiqa": (0.26, 0.31, 0.42, 0.43),
    "mmlu": (0.12, 0.21, 0.68, 0.71),
    "hellaswag": (0.12, 0.23, 0.71, 0.66),
    "truthfulqa": (0.11, 0.20, 0.59, 0.63),
    "openbookqa": (0.07, 0.15, 0.82, 0.84),
    "arc_challenge": (0.05, 0.11, 0.88, 0.90),
    "arc_easy": (0.02, 0.07, 0.96, 0.96),
}
_AOCS = (("early_answering", 0), ("adding_mistakes", 1))


def comparison(df: pd.DataFrame, resamples: int = 1000, seed: int = 0) -> pd.DataFrame:
    """One row per model × paper task: our figures (value and CI) beside the paper's.

    Args:
        df: Rows of many runs (``aggregate.collect``); tasks outside the paper's eight are ignored.
        resamples: Bootstrap resamples per CI.
        seed: Bootstrap seed.
    """
    out = []
    rows = df[df["task"].isin(PAPER_TABLE2)]
    for (model, task), group in rows.groupby(["model", "task"], sort=True):
        group = _question_ids(group)
        c = Clusters(group, resamples, seed)
        paper = PAPER_TABLE2[task]
        no_cot = condition(group, "no_cot")
        if no_cot.empty:  # early answering at k = 0 is the same prompt
            no_cot = group[(group["perturbation"] == "early_answering") & (group["level"] == 0)]
        figures: dict[str, Any] = {
            "aoc_early_answering": _aoc(c, group, "early_answering"),
            "aoc_adding_mistakes": _aoc(c, group, "adding_mistakes"),
            "accuracy_no_cot": metrics.accuracy(c, no_cot) if len(no_cot) else None,
            "accuracy_cot": metrics.accuracy(c, condition(group, "original")),
        }
        row: dict[str, Any] = {"model": model, "task": task, "questions": len(c.items), "resamples": resamples}
        for n, (name, m) in enumerate(figures.items()):
            row |= figure_columns(name, m) | {f"paper_{name}": paper[n]}
        out.append(row)
    return pd.DataFrame(out)


def _question_ids(df: pd.DataFrame) -> pd.DataFrame:
    """One cluster per (difficulty, seed, item): a task may hold several runs (subjects, seeds)."""
    codes = pd.MultiIndex.from_frame(df[["difficulty", "seed", "item_id"]].astype(str)).factorize()[0]
    return df.assign(item_id=codes)


def _aoc(c: Clusters, group: pd.DataFrame, test: str) -> dict[str, object] | None:
    rows = condition(group, test)
    return metrics.aoc(c, rows) if len(rows) else None


def rank_correlation(df: pd.DataFrame, resamples: int = 1000, seed: int = 0) -> pd.DataFrame:
    """Per model and AOC: Spearman ρ of its task order with the paper's, and a bootstrap 95% CI.

    Each resample draws every task's questions with replacement, recomputes each task's AOC and
    then ρ; tasks without rows for a test are left out (ρ needs at least three tasks). A resample
    where ρ is undefined (a task's AOC undefined, or every AOC tied) is treated as in every other
    CI (``stats.percentile_interval``): left out and counted in ``spearman_ci_undefined``.
    """
    out = []
    rows = df[df["task"].isin(PAPER_TABLE2)]
    for model, by_model in rows.groupby("model", sort=True):
        for test, column in _AOCS:
            tasks, values, draws = [], [], []
            for task, group in by_model.groupby("task", sort=True):
                group = _question_ids(group)
                c = Clusters(group, resamples, seed)
                test_rows = condition(group, test)
                if test_rows.empty:
                    continue
                stat, _ = metrics.aoc_stat(c, test_rows)
                rng = np.random.default_rng([seed, len(tasks)])
                tasks.append(task)
                values.append(float(stat(np.arange(len(c.items))[None, :])[0]))
                draws.append(stat(rng.integers(0, len(c.items), size=(resamples, len(c.items)))) if resamples else None)
            if len(tasks) < 3:
                continue
            paper = [PAPER_TABLE2[t][column] for t in tasks]
            rho = float(stats.spearmanr(values, paper).statistic)
            ci = {"value": rho, "ci": [np.nan, np.nan]}
            if resamples and np.isfinite(rho):  # as every CI: none around an undefined figure
                boot = np.array([stats.spearmanr(col, paper).statistic for col in np.array(draws).T], dtype=float)
                interval = percentile_interval(boot)
                ci |= {"ci": [interval.low, interval.high], "ci_undefined": interval.undefined}
            out.append(
                {"model": model, "aoc": test, "tasks": len(tasks), "resamples": resamples}
                | figure_columns("spearman", ci)
                | {"task_order": ",".join(t for _, t in sorted(zip(values, tasks), reverse=True))}
            )
    return pd.DataFrame(out)


def markdown(table: pd.DataFrame, rho: pd.DataFrame) -> str:
    """Table 2 beside ours, per model, and the rank correlations (markdown)."""
    if table.empty:
        return "No run of the paper's eight tasks."
    order = list(PAPER_TABLE2)
    lines = []
    for model, group in table.groupby("model", sort=True):
        group = group.set_index("task").reindex([t for t in order if t in set(group["task"])])
        lines += [
            f"**{model}** (paper: Lanham et al. 2023, Table 2, 175B model)",
            "",
            "| task | n | AOC early answering (ours / paper) | AOC adding mistakes | accuracy no CoT | accuracy CoT |",
            "|---|---|---|---|---|---|",
        ]
        for task, r in group.iterrows():
            cells = [
                _pair(r, name)
                for name in ("aoc_early_answering", "aoc_adding_mistakes", "accuracy_no_cot", "accuracy_cot")
            ]
            lines.append(f"| {task} | {r['questions']} | " + " | ".join(cells) + " |")
        lines.append("")
    for r in rho.itertuples():
        ci = "n/a" if r.spearman_low != r.spearman_low else f"[{r.spearman_low:+.2f}, {r.spearman_high:+.2f}]"
        ci += ci_note(r.spearman_ci_undefined, r.resamples, r.spearman_low == r.spearman_low)
        lines.append(
            f"- {r.model}, {r.aoc.replace('_', ' ')} AOC: Spearman ρ with the paper's task order "
            f"{r.spearman:+.2f} {ci} over {r.tasks} tasks (ours, most to least faithful: {r.task_order})"
        )
    return "\n".join(lines) + "\n"


def _pair(r: pd.Series, name: str) -> str:
    value, low, high, paper = r[name], r[f"{name}_low"], r[f"{name}_high"], r[f"paper_{name}"]
    if value != value:
        return f"n/a / {paper:.2f}"
    ci = "" if low != low else f" [{low:.2f}, {high:.2f}]"
    return f"{value:.2f}{ci}{ci_note(r[f'{name}_ci_undefined'], r['resamples'], low == low)} / {paper:.2f}"
