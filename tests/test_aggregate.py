"""Aggregation and its statistics on synthetic tables whose answers are known."""

from __future__ import annotations

import os
import time

import numpy as np
import pandas as pd
import pytest

from faithfulness import SCHEMA_VERSION
from faithfulness.errors import ConfigError, StateError
from faithfulness.study import aggregate
from faithfulness.study import report as study_report
from scripts import aggregate as aggregate_cli
from tests.synthetic import study, synthetic_run, write_run


def test_cells_paired_differences_and_the_most_faithful_size_find_a_planted_effect():
    table = study(np.random.default_rng(2), reask=0.7)
    cells = aggregate.cell_metrics(table, resamples=500)
    assert len(cells) == 4 and set(cells["questions"]) == {150}
    by = cells.set_index(["model", "digits"])
    assert by.loc[("small", 1), "kappa_no_cot"] == pytest.approx(0.2, abs=0.12)
    assert by.loc[("large", 1), "kappa_no_cot"] == pytest.approx(0.8, abs=0.12)
    assert by.loc[("large", 1), "passes_reask_gate"] is False or not by.loc[("large", 1), "passes_reask_gate"]
    assert by.loc[("small", 1), "passes_reask_gate"]

    paired = aggregate.paired_differences(table, resamples=500).set_index("difficulty")
    assert list(paired[["model_a", "model_b"]].iloc[0]) == ["small", "large"]  # ordered by size
    assert (
        paired.loc["digits=1 operands=2", "delta_pct_same_high"] < 0
        and paired.loc["digits=1 operands=2", "delta_kappa_high"] < 0
    )
    assert (
        paired.loc["digits=3 operands=2", "delta_pct_same_low"]
        < 0
        < paired.loc["digits=3 operands=2", "delta_pct_same_high"]
    )

    best = aggregate.most_faithful(cells, aggregate.paired_differences(table, resamples=500)).set_index("difficulty")
    assert (
        best.loc["digits=1 operands=2", "most_faithful"] == "small"
        and best.loc["digits=1 operands=2", "call"] == "clear"
    )
    assert (
        best.loc["digits=1 operands=2", "delta_vs_runner_up"] < 0 and best.loc["digits=1 operands=2", "delta_high"] < 0
    )
    assert best.loc["digits=3 operands=2", "call"] == "too noisy to call"


def test_a_paired_ci_is_narrower_than_unpaired_when_models_share_their_hard_questions():
    rng = np.random.default_rng(3)
    a = synthetic_run("small", 1, 1, 0.5, rng, n=200)
    b = a.assign(model="large", model_size=2, results_file="b")  # the same answers: a perfectly correlated pair
    b.loc[(b["perturbation"] == "no_cot") & (b["item_id"] < 10), "outcome"] = "same"
    table = pd.concat([a, b], ignore_index=True)
    pair = aggregate.paired_differences(table, resamples=500).iloc[0]
    cells = aggregate.cell_metrics(table, resamples=500).set_index("model")
    paired_width = pair["delta_pct_same_high"] - pair["delta_pct_same_low"]
    separate = sum(
        cells.loc[m, "pct_same_no_cot_high"] - cells.loc[m, "pct_same_no_cot_low"] for m in ("small", "large")
    )
    assert paired_width < separate / 3


def test_collect_follows_sweep_links_and_keeps_the_newest_run_of_a_cell(tmp_path, capsys):
    rng = np.random.default_rng(4)
    old = write_run(synthetic_run("small", 1, 1, 0.5, rng, n=5), tmp_path / "results" / "old")
    os.utime(old, (time.time() - 100, time.time() - 100))
    write_run(synthetic_run("small", 1, 1, 0.5, rng, n=7), tmp_path / "results" / "new")
    other = write_run(synthetic_run("small", 1, 2, 0.5, rng, n=3), tmp_path / "elsewhere" / "d2")
    job = tmp_path / "multirun" / "0"
    job.mkdir(parents=True)
    os.symlink(other.parent, job / "results")
    table, dropped = aggregate.collect([tmp_path / "results", tmp_path / "multirun"])
    assert dropped == [old.resolve()]
    assert "left out" in capsys.readouterr().err
    assert sorted(table.groupby("digits")["item_id"].nunique().items()) == [(1, 7), (2, 3)]


def test_collect_refuses_nothing_found_and_other_schema_versions(tmp_path):
    with pytest.raises(ConfigError, match="no results.parquet"):
        aggregate.collect([tmp_path])
    with pytest.raises(ConfigError, match="does not exist"):
        aggregate.collect([tmp_path / "nope"])
    table = synthetic_run("m", 1, 1, 0.5, np.random.default_rng(5), n=3).drop(columns="results_file")
    path = tmp_path / "v" / "results.parquet"
    path.parent.mkdir()
    table.assign(schema_version=SCHEMA_VERSION + 1).to_parquet(path)
    with pytest.raises(StateError, match=f"schema version \\[{SCHEMA_VERSION + 1}\\]"):
        aggregate.collect([tmp_path])
    path.write_bytes(path.read_bytes()[:100])  # a truncated file
    with pytest.raises(StateError, match=f"results file {path} is unreadable"):
        aggregate.collect([tmp_path])


def test_aggregate_command_writes_tables_figures_and_a_report_that_flags_the_gate(tmp_path, capsys):
    rng = np.random.default_rng(6)
    for n, run in enumerate(study(rng, reask=0.6).groupby("results_file")):
        write_run(run[1], tmp_path / "runs" / str(n))
    assert aggregate_cli.main([str(tmp_path / "runs"), "--out", str(tmp_path / "out"), "--resamples", "200"]) == 0
    out = tmp_path / "out"
    for name in ("report.md", "cells.csv", "paired.csv", "most_faithful.csv", "results.parquet"):
        assert (out / name).stat().st_size > 0
    for name in ("scaling", "heatmap"):
        assert (out / f"{name}.png").read_bytes()[:4] == b"\x89PNG"
    report = (out / "report.md").read_text()
    assert "Below the gate" in report and "large on addition digits=1 operands=2" in report
    assert "![% same answer with vs without CoT by model size](scaling.png)" in report
    cells = pd.read_csv(out / "cells.csv")
    assert len(cells) == 4 and set(cells["model"]) == {"small", "large"}
    assert "| small | 0.10B | addition | digits=1 operands=2 | 150 |" in capsys.readouterr().out
    assert aggregate_cli.main([str(tmp_path / "missing")]) == 2


def test_aggregating_twice_gives_the_same_table_and_never_reads_its_own_outputs(tmp_path):
    rng = np.random.default_rng(7)
    for n, run in enumerate(study(rng).groupby("results_file")):
        write_run(run[1], tmp_path / "runs" / str(n))
    tables = []
    for _ in range(3):  # the default output folder is inside the folder it scans
        assert aggregate_cli.main([str(tmp_path / "runs"), "--resamples", "50"]) == 0
        tables.append(pd.read_parquet(tmp_path / "runs" / "aggregate" / "results.parquet"))
    assert len(tables[0]) == 4 * 150 * 3
    pd.testing.assert_frame_equal(tables[0], tables[1])
    pd.testing.assert_frame_equal(tables[0], tables[2])
    assert (tmp_path / "runs" / "aggregate" / aggregate.MARKER).exists()
    with pytest.raises(ConfigError, match="is an aggregation's output, not a run"):
        aggregate.collect([tmp_path / "runs" / "aggregate"])


def test_an_unmarked_aggregation_table_from_before_the_marker_is_left_out(tmp_path, capsys):
    rng = np.random.default_rng(8)
    write_run(synthetic_run("m", 1, 1, 0.5, rng, n=5), tmp_path / "run")
    old = tmp_path / "old-aggregate" / "results.parquet"
    old.parent.mkdir()
    synthetic_run("m", 1, 1, 0.5, rng, n=9).to_parquet(old)  # an aggregation's table: it has a results_file column
    table, _ = aggregate.collect([tmp_path])
    assert table["item_id"].nunique() == 5 and table["results_file"].nunique() == 1
    assert f"{old} is an aggregation's output and is left out" in capsys.readouterr().err


def test_an_output_folder_holding_a_run_is_refused(tmp_path):
    run = write_run(synthetic_run("m", 1, 1, 0.5, np.random.default_rng(9), n=5), tmp_path / "run")
    before = run.read_bytes()
    assert aggregate_cli.main([str(tmp_path), "--out", str(run.parent)]) == 2
    assert run.read_bytes() == before


def test_exit_codes_are_2_for_arguments_and_3_for_damaged_files_or_unwritable_outputs(tmp_path, capsys):
    run = write_run(synthetic_run("m", 1, 1, 0.5, np.random.default_rng(10), n=5), tmp_path / "runs" / "a")
    (tmp_path / "file").write_text("")
    assert aggregate_cli.main([str(tmp_path / "runs"), "--out", str(tmp_path / "file" / "out")]) == 3
    assert capsys.readouterr().err.startswith(f"error: {tmp_path / 'file' / 'out'}: ")
    assert aggregate_cli.main([str(tmp_path / "runs"), "--resamples", "-1"]) == 2
    run.write_bytes(run.read_bytes()[:100])
    assert aggregate_cli.main([str(tmp_path / "runs")]) == 3  # README: a damaged file is exit code 3
    assert f"results file {run} is unreadable" in capsys.readouterr().err


def test_a_study_figure_with_undefined_resamples_counts_them_in_its_table_and_report():
    run = synthetic_run("small", 10**8, 1, 0.5, np.random.default_rng(5), n=150)
    # the re-ask of one question only: a resample that misses it has no re-ask agreement
    run = run[(run["perturbation"] != "early_answering") | (run["item_id"] == 0)]
    cells = aggregate.cell_metrics(run, resamples=300)
    cell = cells.iloc[0]
    assert 0.2 * 300 < cell["reask_agreement_ci_undefined"] < 0.5 * 300  # (149/150)^150 ≈ 37% miss it
    assert cell["reask_agreement_low"] == cell["reask_agreement_high"] == 1.0  # one question: one value
    assert cell["accuracy_cot_ci_undefined"] == 0 and cell["resamples"] == 300
    table = study_report.main_table(cells)
    assert f"100% [100, 100] ({cell['reask_agreement_ci_undefined']} of 300 resamples undefined) ok" in table
    assert table.count("resamples undefined") == 2  # the re-ask and the early-answering AOC, nothing else
