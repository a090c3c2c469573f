"""A mistake writer other than the subject model: config, and a run on the real engine (one engine at a time)."""

import shutil

import pytest

from faithfulness.errors import ConfigError
from faithfulness.loading.hydra import MODEL_CONFIGS, compose, load_model_config
from faithfulness.loading.rules import load
from faithfulness.pipeline import run
from tests.test_pipeline import make_cfg


def test_a_model_config_with_defaults_is_resolved_as_hydra_would():
    pythia = load_model_config(MODEL_CONFIGS / "pythia-160m.yaml")
    assert (
        pythia["path"] == "EleutherAI/pythia-160m"
        and pythia["source"] == "hf"
        and pythia["prompt_format"] == "human_assistant"
    )


def test_the_writer_is_a_model_config_a_directory_or_the_subject(tmp_path):
    def writer(name):  # the subject is the default model, qwen2.5-coder-0.5b
        return load(compose([f"results_dir={tmp_path}", f"mistakes.model={name}"])).writer

    assert writer("null") is None
    assert writer("qwen2.5-coder-0.5b") is None  # the subject itself
    assert writer("smollm2-135m").name == "smollm2-135m-instruct"
    (tmp_path / "config.json").write_text("{}")
    assert writer(str(tmp_path)).path == str(tmp_path) and writer(str(tmp_path)).source == "hf"
    with pytest.raises(ConfigError, match="mistakes.model='gpt-5' is not allowed: .*smollm2-135m"):
        writer("gpt-5")


def test_a_separate_writer_writes_the_mistakes_in_its_own_process(tiny_model_dir, tmp_path):
    writer_dir = shutil.copytree(tiny_model_dir, tmp_path / "writer-model")  # another model to the harness
    overrides = (
        "model=hf",
        f"model.path={tiny_model_dir}",
        "n=2",
        "sampling.max_tokens=24",
        "sampling.temperature=1.0",  # greedy, the random model repeats one byte: a CoT without steps to corrupt
        "mistakes.writer=model",
        f"mistakes.model={writer_dir}",
        "perturbations=[adding_mistakes,paraphrasing]",
        "bootstrap_resamples=10",
    )
    cfg = make_cfg(tmp_path, *overrides)
    out = run(
        load(cfg)
    )  # no engine handed in: the subject's and the writer's engines are processes, one alive at a time
    stages, writer = out.summary["stages"], out.summary["mistake_writer"]
    mistakes = out.table[out.table.perturbation == "adding_mistakes"]
    assert (out.table[out.table.perturbation == "original"].n_steps > 0).all(), "the CoTs need steps for mistakes"
    written = stages["mistakes by the writer"]["requests"]
    assert writer["model"].endswith("writer-model") and writer["to_engine"] == written > 0
    # the subject wrote only the paraphrases; the writer's rewrites became the mistakes (or were skipped as identical)
    assert stages["rewrites"]["requests"] == (out.table.perturbation == "paraphrasing").sum() + sum(
        s["perturbation"] == "paraphrasing" for s in out.summary["skipped"]
    )
    assert len(mistakes) + sum(s["perturbation"] == "adding_mistakes" for s in out.summary["skipped"]) == written
    # the writer's work is in the run's request store: a rerun starts no engine at all
    again = run(load(cfg))
    assert "engine_start_s" not in again.summary["timings"] and again.summary["mistake_writer"]["from_store"] == written
