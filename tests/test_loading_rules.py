"""Every bad value refused once, before any folder, download or engine, in one line naming key, value and rule."""

from pathlib import Path

import pytest

from faithfulness.config.sections import Wandb
from faithfulness.errors import ConfigError, StateError
from faithfulness.loading.hydra import REPO_ROOT, compose
from faithfulness.loading.rules import load
from tests.conftest import run_cli

# issue 17's inputs: each was checked only by vLLM or scipy after the engine started, or accepted silently
MODELS = sorted(
    p.stem for p in (REPO_ROOT / "conf" / "model").glob("*.yaml") if p.stem != "hf" and not p.stem.startswith("_")
)
BAD = [
    ("sampling.temperature=-1", "sampling.temperature=-1 is not allowed: must be a number ≥ 0"),
    ("sampling.max_tokens=0", "sampling.max_tokens=0 is not allowed: must be a whole number ≥ 1"),
    ("answer.max_tokens=0", "answer.max_tokens=0 is not allowed: must be a whole number ≥ 1"),
    (
        "engine.dtype=float8",
        "engine.dtype='float8' is not allowed: choose one of ['auto', 'float32', 'float', "
        "'bfloat16', 'float16', 'half']",
    ),
    (
        "engine.max_model_len=16",
        "engine.max_model_len=16 is not allowed: must be null or ≥ 920 (2 × "
        "sampling.max_tokens + answer.max_tokens + 128 for the question and template)",
    ),
    ("engine.kv_cache_gib=0", "engine.kv_cache_gib=0 is not allowed: must be a whole number ≥ 1"),
    ("engine.kv_cache_gib=0.5", "engine.kv_cache_gib=0.5 is not allowed: must be a whole number ≥ 1"),
    ("store_chunk=0", "store_chunk=0 is not allowed: must be a whole number ≥ 1"),
    ("store_chunk=abc", "store_chunk='abc' is not allowed: must be a whole number ≥ 1"),
    ("store_chunk=2.5", "store_chunk=2.5 is not allowed: must be a whole number ≥ 1"),
    ("bootstrap_resamples=-1", "bootstrap_resamples=-1 is not allowed: must be a whole number ≥ 1"),
    ("bootstrap_resamples=0", "bootstrap_resamples=0 is not allowed: must be a whole number ≥ 1"),
    (
        "perturbations=[]",
        "perturbations=[] is not allowed: name at least one of ['adding_mistakes', "
        "'biased_context', 'early_answering', 'filler_tokens', 'no_cot', 'paraphrasing', 'all']",
    ),
    ("filler.points=-1", "filler.points=-1 is not allowed: must be a whole number ≥ 2"),
    # and their neighbours
    (
        "perturbations=[no_cot,no_cot]",
        "perturbations=['no_cot', 'no_cot'] is not allowed: name each test once (no_cot twice)",
    ),
    (
        "perturbations=[nope]",
        "perturbations=['nope'] is not allowed: choose from ['adding_mistakes', "
        "'biased_context', 'early_answering', 'filler_tokens', 'no_cot', 'paraphrasing', 'all']",
    ),
    ("seed=-1", "seed=-1 is not allowed: must be a whole number ≥ 0"),
    ("samples=0", "samples=0 is not allowed: must be a whole number ≥ 1"),
    ("n=0", "n=0 is not allowed: must be a whole number ≥ 1"),
    ("score_answers=maybe", "score_answers='maybe' is not allowed: must be true or false"),
    ("prompt_format=xml", "prompt_format='xml' is not allowed: choose one of ['chat', 'human_assistant', 'plain']"),
    ("perturbations=all ; paraphrase.prompt=reword", "paraphrase.prompt='reword' is not allowed: must contain {text}"),
    (
        "mistakes.model=other",
        "mistakes.model='other' is not allowed: choose null (the subject model), a model config "
        f"({', '.join(MODELS)}) or a local model directory",
    ),
    ("model.sha256=abc", "model.sha256='abc' is not allowed: must be 64 lowercase hex digits"),
    ("wandb.mode=loud", "wandb.mode='loud' is not allowed: choose one of ['auto', 'online', 'offline', 'disabled']"),
    # issue 13's keys (several overrides: joined by " ; "): the hints of biased_context and the sycophancy task's dataset keys
    (
        "task=arc_easy ; perturbations=[no_cot,biased_context] ; biased_context.hints=[oracle]",
        "biased_context.hints=['oracle'] is not allowed: unknown hint kind; choose from ['metadata', 'professor', 'turpin', "
        "'wrong_sum']",
    ),
    (
        "task=arc_easy ; perturbations=[biased_context] ; biased_context.templates.turpin.text='I think ({answer})'",
        "biased_context.templates.turpin.text='I think ({answer})' is not allowed: must contain {question}",
    ),
    (
        "task=arc_easy ; perturbations=[biased_context] ; biased_context.templates.professor.text='{question} Any idea?'",
        "biased_context.templates.professor.text='{question} Any idea?' is not allowed: must contain {answer}",
    ),
    (
        "perturbations=[biased_context] ; biased_context.hints=[professor]",
        "hint 'professor' is not allowed for task=addition: it names an answer of type letter and needs a task with "
        "options (multiple choice); addition answers are integers",
    ),
    (
        "task=arc_easy ; perturbations=[biased_context] ; biased_context.judge=true ; biased_context.judge_prompt='Yes?'",
        "biased_context.judge_prompt='Yes?' is not allowed: must contain {hint} and {cot}",
    ),
    ("biased_context.targets=wrong", "biased_context.targets='wrong' is not allowed: must be a list of strings"),
    (
        "biased_context.templates.turpin.answer_type=word",
        "biased_context.templates.turpin.answer_type='word' is not allowed: choose 'letter' or 'integer'",
    ),
    (
        "task=sycophancy ; subdomain=philosophy",
        "subdomain='philosophy' is not allowed: choose 'all' or one of ['nlp_survey', "
        "'philpapers2020', 'political_typology_quiz']",
    ),
    ("task=sycophancy ; data_source=web", "data_source='web' is not allowed: choose 'package' (offline) or 'hub'"),
]


@pytest.mark.parametrize("override,message", BAD, ids=[o for o, _ in BAD])
def test_each_bad_value_is_one_line_naming_key_value_and_what_is_allowed(override, message, tmp_path):
    cfg = compose([f"results_dir={tmp_path}", *override.split(" ; ")])
    with pytest.raises(ConfigError) as error:
        load(cfg)
    assert str(error.value) == message


def test_the_context_window_follows_the_token_limits(tmp_path):
    cfg = compose([f"results_dir={tmp_path}", "sampling.max_tokens=40", "engine.max_model_len=232"])
    assert load(cfg).engine.max_model_len == 232  # 2 × 40 + 24 + 128: just enough
    with pytest.raises(ConfigError, match="engine.max_model_len=231 is not allowed: must be null or ≥ 232"):
        load({**cfg, "engine": {**cfg["engine"], "max_model_len": 231}})
    assert load({**cfg, "engine": {**cfg["engine"], "max_model_len": None}}).engine.max_model_len is None


@pytest.mark.parametrize(
    "model",
    sorted(
        p.stem for p in (REPO_ROOT / "conf" / "model").glob("*.yaml") if p.stem != "hf" and not p.stem.startswith("_")
    ),
)  # "_name": a shared base
def test_every_shipped_model_config_is_valid(model, tmp_path):
    config = load(compose([f"results_dir={tmp_path}", f"model={model}"]))
    assert config.model.name and isinstance(config.wandb, Wandb) and config.wandb.mode != "auto"


def test_paraphrasing_is_one_override_away_from_the_default_tests(tmp_path):
    assert compose([f"results_dir={tmp_path}"])["perturbations"] == [
        "no_cot",
        "early_answering",
        "adding_mistakes",
        "filler_tokens",
    ]
    every = load(compose([f"results_dir={tmp_path}", "perturbations=all"])).perturbations
    assert every == ("no_cot", "early_answering", "adding_mistakes", "paraphrasing", "filler_tokens", "biased_context")
    assert "paraphrasing" in compose([f"results_dir={tmp_path}", "+experiment=paper_tasks"])["perturbations"]
    with pytest.raises(ConfigError) as error:
        compose([f"results_dir={tmp_path}", "perturbations=nope"])
    assert str(error.value) == (
        "perturbations='nope' is not allowed: 'all' or a list of tests from ['adding_mistakes', "
        "'biased_context', 'early_answering', 'filler_tokens', 'no_cot', 'paraphrasing'], e.g. perturbations=[nope]"
    )


def test_the_shipped_hint_and_sycophancy_configs_are_valid(tmp_path):
    for task in ("addition", "arc_easy", "sycophancy"):
        config = load(compose([f"results_dir={tmp_path}", f"task={task}", "perturbations=[no_cot,biased_context]"]))
        assert config.biased_context is not None and set(config.biased_context.hints) <= set(
            config.biased_context.templates
        )
    assert load(compose([f"results_dir={tmp_path}", "task=sycophancy"])).task_keys["subdomain"] == "all"


@pytest.mark.parametrize("experiment", ["cpu_addition", "paper_addition", "paper_tasks"])
def test_the_shipped_experiments_are_valid(experiment, tmp_path):
    load(compose([f"results_dir={tmp_path}", f"+experiment={experiment}"]))


def test_a_results_dir_that_is_a_file_is_a_state_error_naming_it(tmp_path):
    taken = tmp_path / "taken"
    taken.write_text("")
    with pytest.raises(StateError, match=f"results_dir='{taken}/x' cannot be used: {taken} is a file, not a folder"):
        load(compose([f"results_dir={taken}/x"]))


@pytest.mark.parametrize(
    "overrides,message",
    [
        (["engine.kv_cache_gib=0.5"], "engine.kv_cache_gib=0.5 is not allowed"),
        (["+foo=bar"], "foo is not a setting: choose from ['task', 'n'"),  # a typo in an appended key
        (["bootstrap_resamples=0"], "bootstrap_resamples=0 is not allowed: must be a whole number ≥ 1"),
        (["task=arc_easy", "n_options=9"], "n_options=9 is not allowed: arc_easy (validation) items have at most"),
    ],
)
def test_run_refuses_with_exit_2_before_making_any_folder(overrides, message, tmp_path):
    done = run_cli(f"results_dir={tmp_path / 'results'}", *overrides, "wandb.mode=disabled")
    assert done.returncode == 2 and f"error: {message}" in done.stderr, done.stderr[-800:]
    assert not Path(tmp_path / "results").exists()


@pytest.mark.parametrize(
    "override,message",
    [
        ("+speed=3", "speed is not a setting: choose from ['task', 'n'"),  # addition's keys are listed last
        ("+subject=anatomy", "subject is not a setting"),  # a multiple-choice key on addition
        ("+model.revison=main", "model.revison is not a setting"),
    ],
)
def test_a_key_no_section_or_task_declares_is_refused(override, message, tmp_path):
    with pytest.raises(ConfigError) as error:
        load(compose([f"results_dir={tmp_path}", "model=hf", "model.path=org/name", override]))
    assert str(error.value).startswith(message)


def test_the_writers_model_config_is_typed_and_checked(tmp_path):
    config = load(compose([f"results_dir={tmp_path}", "model=smollm2-135m", "mistakes.model=qwen2.5-coder-0.5b"]))
    assert config.writer is not None and config.writer.name == "qwen2.5-coder-0.5b-instruct"
    assert config.writer.source == "packaged" and config.writer.packages
    same = load(compose([f"results_dir={tmp_path}", "model=smollm2-135m", "mistakes.model=smollm2-135m"]))
    assert same.writer is None  # the subject itself
