"""Synthetic results tables whose answers are known, for the statistics tests."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from faithfulness.results import COLUMNS, to_table, write_parquet

ERRORS = np.array([0, 10, -1, 100])  # error offsets (answer − truth): correct, dropped carry, off by one, ...
MARGINAL = np.array([0.6, 0.2, 0.1, 0.1])


def synthetic_run(
    model: str,
    size: int,
    digits: int,
    same: float,
    rng: np.random.Generator,
    n: int = 80,
    operands: int = 2,
    seed: int = 0,
    reask: float = 1.0,
    family: str = "fam",
) -> pd.DataFrame:
    """One run's rows: per question an original answer drawn from MARGINAL's errors, and a no-CoT
    answer that copies it with probability ``same`` and is otherwise an independent draw (so the
    true κ is ``same``), plus a re-ask row that agrees with probability ``reask``."""
    defaults = {name: None for name, _, _ in COLUMNS if name != "schema_version"}
    rows = []
    for item in range(n):
        truth = 1000 + item
        original = truth + rng.choice(ERRORS, p=MARGINAL)
        no_cot = original if rng.random() < same else truth + rng.choice(ERRORS, p=MARGINAL)
        reasked = original if rng.random() < reask else original + 1
        base = defaults | {
            "run_id": f"{model}-{digits}-{operands}-{seed}",
            "model": model,
            "model_revision": "r",
            "model_family": family,
            "model_size": size,
            "task": "addition",
            "digits": digits,
            "operands": operands,
            "seed": seed,
            "difficulty": f"digits={digits} operands={operands}",
            "answer_type": "integer",
            "item_id": item,
            "question": f"What is {truth}?",
            "correct_answer": str(truth),
            "sample": 0,
            "n_steps": 2,
            "reference_answer": str(original),
            "prompt_format": "chat",
            "template_hash": "t",
            "engine": "vllm-cpu",
            "engine_version": "0",
            "dtype": "float32",
            "versions": "{}",
        }
        for perturbation, level, answer in (
            ("original", 2, original),
            ("no_cot", 0, no_cot),
            ("early_answering", 2, reasked),
        ):
            strict = {
                "answer": str(answer),
                "outcome": "same" if answer == original else "changed",
                "correct": answer == truth,
                "reference_answer": str(original),
            }
            # the flexible reading reads what the strict one reads the same way
            rows.append(
                base
                | strict
                | {f"{k}_flexible": v for k, v in strict.items()}
                | {"perturbation": perturbation, "level": level, "answer_rule": "strict"}
            )
    return to_table(rows).assign(results_file=f"{model}/{digits}/{operands}/{seed}")


def study(rng: np.random.Generator, reask: float = 1.0) -> pd.DataFrame:
    """Two sizes × two difficulties: at 1 digit the small model's answer changes much more without CoT."""
    return pd.concat(
        [
            synthetic_run("small", 10**8, 1, 0.2, rng, n=150),
            synthetic_run("large", 10**9, 1, 0.8, rng, n=150, reask=reask),
            synthetic_run("small", 10**8, 3, 0.5, rng, n=150),
            synthetic_run("large", 10**9, 3, 0.5, rng, n=150),
        ],
        ignore_index=True,
    )


def write_run(table: pd.DataFrame, folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    write_parquet(table.drop(columns="results_file"), folder / "results.parquet")
    return folder / "results.parquet"


def run_header(task: str, n_problems: int) -> dict[str, object]:
    """The ``run`` block a printed table needs, for summaries made without a run."""
    return {
        "model": "m",
        "task": task,
        "difficulty": "d",
        "n_problems": n_problems,
        "samples": 1,
        "engine": "e",
        "engine_version": "0",
        "dtype": "float32",
    }
