"""Hints and sycophancy through the whole pipeline on the real engine (tiny random model, shared engine)."""

import json
import shutil
from pathlib import Path

import pandas as pd
import pytest

from faithfulness.loading.rules import load
from faithfulness.models import resolve_model
from faithfulness.pipeline import build_renderer, run
from faithfulness.results import read_results
from faithfulness.summaries import summarise_run, summary_options
from faithfulness.tasks import make_task
from tests.test_pipeline import make_cfg

FIXTURES = Path(__file__).parent / "fixtures" / "data"


def _cfg(tmp: Path, tiny_model_dir: Path, *overrides: str) -> dict:
    shutil.copytree(FIXTURES, tmp / "cache" / "data", ignore=shutil.ignore_patterns("*.py", "README*"))
    return make_cfg(
        tmp, "model=hf", f"model.path={tiny_model_dir}", "sampling.max_tokens=24", "bootstrap_resamples=50", *overrides
    )


@pytest.fixture(scope="module")
def hinted_run(tiny_model_dir, tiny_engine, tmp_path_factory):
    cfg = _cfg(
        tmp_path_factory.mktemp("hints"),
        tiny_model_dir,
        "task=arc_challenge",
        "n=3",
        "perturbations=[no_cot,biased_context]",
        "biased_context.judge=true",
    )
    return cfg, run(load(cfg), engine=tiny_engine)


def test_every_question_is_asked_with_every_hint_and_target_with_and_without_a_fresh_cot(hinted_run):
    cfg, out = hinted_run
    df = out.table
    hinted = df[df.perturbation == "biased_context"]
    assert len(hinted) == 3 * 3 * 2 * 2  # items × hint kinds × targets (wrong, correct) × levels (no CoT, fresh CoT)
    config = load(cfg)
    renderer = build_renderer(
        config, config.model, config.prompt_format, resolve_model(config.model, config.cache_dir), make_task(config)
    )
    for row in hinted.itertuples():
        question = cfg["biased_context"]["templates"][row.hint]["text"].replace("{question}", row.question)
        question = question.replace("{answer}", row.target_answer)
        assert row.edited_text in row.prompt and row.prompt == renderer.answer_prompt(question, row.shown_cot)
        assert row.target_answer in row.choices
        assert row.level == 1 or row.shown_cot == ""  # level 1: a fresh CoT of the hinted question
        assert pd.isna(row.hint_verbalised) == (row.level == 0)  # the rule reads only fresh CoTs
    for item, group in hinted.groupby("item_id"):
        wrong = set(group.target_answer) - set(group.correct_answer)
        assert len(wrong) == 1  # one wrong X per item, shared by every hint kind
        assert (df[(df.item_id == item) & (df.perturbation != "biased_context")].target_answer == wrong.pop()).all()
    assert out.summary["stages"]["hint judge"]["requests"] == len(hinted[hinted.level == 1])


def test_the_hint_summary_is_a_pure_function_of_the_table(hinted_run):
    cfg, out = hinted_run
    hints = out.summary["metrics"]["bias"]["hints"]
    assert sorted(hints) == ["metadata", "professor", "turpin"]
    for kind in hints.values():
        assert set(kind) == {"wrong", "correct"} and set(kind["wrong"]) == {"cot", "no_cot"}
        assert {"moved_to_target", "verbalised", "normalised_faithfulness"} <= set(kind["wrong"]["cot"])
    recomputed = summarise_run(read_results(out.out_dir / "results.parquet"), summary_options(load(cfg)))
    assert json.dumps(recomputed["metrics_by_reading"], sort_keys=True) == json.dumps(
        out.summary["metrics_by_reading"], sort_keys=True
    )
    assert all("hints" in m["bias"] for m in out.summary["metrics_by_reading"].values())  # under both answer readings
    assert {Path(p).name for p in out.summary["figures"]} >= {"hints.png", "hints.svg"}


def test_a_sycophancy_run_reports_both_measures_of_the_sycophantic_option(tiny_model_dir, tiny_engine, tmp_path):
    # the political items: the tiny model's byte-level tokens fit them in its 1024-token window
    cfg = _cfg(tmp_path, tiny_model_dir, "task=sycophancy", "subdomain=political_typology_quiz", "n=3", "cut_points=3")
    out = run(load(cfg), engine=tiny_engine)
    df = out.table
    assert set(df.perturbation) == {"original", "no_cot", "early_answering"}
    assert set(df.subdomain) == {"political_typology_quiz"}
    assert df.target_answer.notna().all() and (df.target_answer != df.correct_answer).all()
    assert all(sorted(json.loads(s)) == ["A", "B"] for s in df.option_logprobs)
    conditions = out.summary["metrics"]["bias"]["conditions"]
    for key in ("cot", "no_cot"):
        block = conditions[key]
        assert block["mean_p_target"]["n"] == 3 and 0 <= block["mean_p_target"]["value"] <= 1
        assert block["disagree"]["n"] == 3
    assert set(conditions["early_answering"]["pct_target_top_by_fraction"]) == {"0", "0.25", "0.5", "0.75", "1"}
    assert {Path(p).name for p in out.summary["figures"]} >= {"bias_items.png"}


def test_a_stated_wrong_sum_is_scored_on_every_row_of_an_addition_run(tiny_model_dir, tiny_engine, tmp_path):
    cfg = _cfg(
        tmp_path, tiny_model_dir, "n=3", "perturbations=[no_cot,biased_context]", "biased_context.targets=[wrong]"
    )
    df = run(load(cfg), engine=tiny_engine).table
    hinted = df[df.perturbation == "biased_context"]
    assert set(hinted.hint) == {"wrong_sum"} and len(hinted) == 3 * 2
    assert all(f"I think the answer is {x}, but" in p for x, p in zip(hinted.target_answer, hinted.prompt))
    assert df.target_answer.ne(df.correct_answer).all() and df.logprob_target.notna().all()
    assert df.option_logprobs.isna().all() and (df.logprob_target < 0).all()
