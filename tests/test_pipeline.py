"""The whole pipeline on the real engine (tiny random model, shared engine)."""

import json
from pathlib import Path

import pandas as pd
import pytest

from faithfulness.loading.hydra import compose
from faithfulness.loading.rules import load
from faithfulness.pipeline import run
from faithfulness.provenance import results_dir
from faithfulness.results import read_results
from faithfulness.summaries import Options, summarise_reading, summarise_run, summary_options
from tests.conftest import ENGINE_SETTINGS


def make_cfg(tmp_path: Path, *overrides: str) -> dict:
    plain = compose([f"results_dir={tmp_path}", f"cache_dir={tmp_path / 'cache'}", *overrides])
    plain["engine"].update(ENGINE_SETTINGS)
    return plain


@pytest.fixture(scope="module")
def tiny_run(tiny_model_dir, tiny_engine, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("run")
    cfg = make_cfg(tmp, "model=hf", f"model.path={tiny_model_dir}", "n=4", "samples=2", "sampling.max_tokens=40")
    return cfg, run(load(cfg), engine=tiny_engine)


def test_rows_cover_every_cot_and_level(tiny_run):
    cfg, out = tiny_run
    df = out.table
    cots = df[df.perturbation == "original"]
    assert len(cots) == 4 * 2
    early = df[df.perturbation == "early_answering"]
    assert len(early) == int((cots.n_steps + 1).sum())
    for (item, sample), group in early.groupby(["item_id", "sample"]):
        assert sorted(group.level) == list(range(int(group.n_steps.iloc[0]) + 1))
        assert all(group.cot.iloc[0].startswith(s) for s in group.shown_cot)


def test_outcomes_are_three_valued_and_consistent_with_answers(tiny_run):
    df = tiny_run[1].table
    assert set(df.outcome) <= {"same", "changed", "unparsed"}
    unparsed = df.answer.isna() | df.reference_answer.isna()
    assert (df.outcome == "unparsed").equals(unparsed)
    comparable = df[~unparsed]
    assert ((comparable.outcome == "same") == (comparable.answer == comparable.reference_answer)).all()
    assert df.correct.isna().equals(df.answer.isna())


def test_results_and_summary_are_written_where_the_config_says(tiny_run):
    cfg, out = tiny_run
    assert out.out_dir == results_dir(load(cfg))
    back = read_results(out.out_dir / "results.parquet")
    pd.testing.assert_frame_equal(back, out.table)
    assert (out.out_dir / "summary.json").is_file() and (out.out_dir / "config.json").is_file()
    stages = out.summary["stages"]
    # one batched call per stage (none where a stage has no request)
    assert all(stage["calls"] == (1 if stage["requests"] else 0) for stage in stages.values()), stages
    assert stages["chains of thought"]["calls"] == stages["forced answers"]["calls"] == 1
    shared = stages["forced answers"]["shared"]  # no CoT = early answering at 0 = filler at 0: asked once
    assert stages["forced answers"]["requests"] == stages["forced answers"]["to_engine"] == len(out.table) - shared
    # no CoT, early answering at 0 and filler are asked once per distinct prompt; re-asks of a full CoT stay separate
    df = out.table
    once = df[
        df.perturbation.isin(["no_cot", "filler_tokens"]) | ((df.perturbation == "early_answering") & (df.level == 0))
    ]
    assert shared == len(once) - once.prompt.nunique() > 4 * (3 * 2 - 1)
    assert all(stage["from_store"] == 0 for stage in stages.values())  # a fresh folder: everything computed
    assert 0 < stages["forced answers"]["cached_tokens"] < stages["forced answers"]["prompt_tokens"]


def test_summary_is_a_pure_function_of_the_table(tiny_run):
    cfg, out = tiny_run
    recomputed = summarise_run(read_results(out.out_dir / "results.parquet"), summary_options(load(cfg)))
    for key in ("answer_extract", "metrics", "metrics_by_reading", "reading_warnings"):
        assert json.dumps(recomputed[key], sort_keys=True) == json.dumps(out.summary[key], sort_keys=True), key
    assert out.summary["metrics"] == out.summary["metrics_by_reading"][out.summary["answer_extract"]]
    strict = summarise_reading(
        read_results(out.out_dir / "results.parquet"), Options(resamples=1000, seed=0)
    )  # the table's own columns: strict
    assert json.dumps(strict["accuracy_cot"]) == json.dumps(out.summary["metrics_by_reading"]["strict"]["accuracy_cot"])


def test_no_cot_and_the_zero_levels_are_one_answer_reported_under_each(tiny_run):
    df = tiny_run[1].table
    zero = df[df.perturbation.isin(["no_cot", "early_answering", "filler_tokens"]) & (df.level == 0)]
    for _, group in zero.groupby(["item_id", "sample"]):
        assert len(group) == 3 and group.prompt.nunique() == 1 and group.answer_text.nunique() == 1


def test_rows_record_what_changes_numbers(tiny_run):
    df = tiny_run[1].table
    for column in (
        "model",
        "model_revision",
        "template_hash",
        "engine",
        "engine_version",
        "dtype",
        "versions",
        "run_id",
    ):
        assert df[column].notna().all() and df[column].nunique() == 1, column
    assert df.cot_seed.nunique() == 8  # one seed per (problem, sample)
    assert df.dtype.iloc[0] == "float32" and df.engine.iloc[0] == "vllm-cpu"


def test_a_rerun_reproduces_the_table(tiny_run, tiny_engine, tmp_path):
    cfg, out = tiny_run
    again = run(load({**cfg, "results_dir": str(tmp_path)}), engine=tiny_engine).table
    # everything but cache hits (the second run finds a warm cache) is identical
    pd.testing.assert_frame_equal(again.drop(columns="cached_tokens"), out.table.drop(columns="cached_tokens"))


def test_results_folder_depends_on_what_is_computed_not_on_where(tmp_path):
    a = make_cfg(tmp_path, "model=smollm2-135m")
    assert results_dir(load(a)) == results_dir(load({**a, "cache_dir": str(tmp_path / "elsewhere")}))
    assert results_dir(load(a)) != results_dir(load({**a, "seed": 1}))
    assert "addition-d3-o2/smollm2-135m-instruct/n50-s1-seed0-" in str(results_dir(load(a)))


@pytest.fixture(scope="module")
def tiny_mc_run(tiny_model_dir, tiny_engine, tmp_path_factory):
    """A multiple-choice run on the fixture items of ARC-Challenge (tests/fixtures/data)."""
    import shutil

    tmp = tmp_path_factory.mktemp("mc")
    shutil.copytree(
        Path(__file__).parent / "fixtures" / "data",
        tmp / "cache" / "data",
        ignore=shutil.ignore_patterns("*.py", "README*"),
    )
    cfg = make_cfg(
        tmp,
        "task=arc_challenge",
        "model=hf",
        f"model.path={tiny_model_dir}",
        "n=3",
        "sampling.max_tokens=24",
        "perturbations=[no_cot,early_answering,filler_tokens]",
    )
    return cfg, run(load(cfg), engine=tiny_engine)


def test_a_multiple_choice_run_scores_every_option_of_every_answer(tiny_mc_run):
    cfg, out = tiny_mc_run
    df = out.table
    assert out.out_dir == results_dir(load(cfg)) and "arc_challenge-validation/" in str(out.out_dir)
    assert set(df.task) == {"arc_challenge"} and set(df.difficulty) == {"split=validation subject=all n_options=all"}
    assert df.digits.isna().all() and set(df.split) == {"validation"} and set(df.answer_type) == {"letter"}
    assert all(p.endswith("The single, most likely answer is (") for p in df.prompt if p), df.prompt.iloc[0][-60:]
    for row in df.itertuples():
        scored = json.loads(row.option_logprobs)
        assert sorted(scored) == list(row.choices) and all(v <= 0 for v in scored.values())
        assert pd.isna(row.answer) or row.answer in row.choices
        assert row.logprob_correct == scored[row.correct_answer]
        assert (pd.isna(row.reference_answer) and pd.isna(row.logprob_original)) or row.logprob_original == scored[
            row.reference_answer
        ]
    assert "data_sha256" in json.loads(df.data_provenance.iloc[0])
    for name in ("no_cot", "early_answering", "filler_tokens"):
        block = out.summary["metrics"][name]
        assert {"mean_p_original_normalised", "pct_original_top"} <= set(block)
