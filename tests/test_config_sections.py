"""The typed config: each field documented, types and ranges refused in one line naming key, value and rule."""

import typing
from dataclasses import fields, is_dataclass

import pytest

from faithfulness.config import sections
from faithfulness.config.fields import build
from faithfulness.errors import ConfigError
from faithfulness.loading.hydra import compose


def _dataclasses(cls, seen=None):
    seen = seen if seen is not None else set()
    seen.add(cls)
    for f in fields(cls):
        kind = typing.get_type_hints(cls)[f.name]
        for inner in (kind, *typing.get_args(kind)):
            if is_dataclass(inner) and inner not in seen:
                _dataclasses(inner, seen)
    return seen


def test_every_field_of_every_section_has_a_one_line_doc():
    for cls in _dataclasses(sections.RunConfig):
        for f in fields(cls):
            if f.name in ("task_keys", "writer", "plain") and cls is sections.RunConfig:
                continue  # set by rules.load, not config keys
            assert f.metadata.get("doc") and "\n" not in f.metadata["doc"], (cls.__name__, f.name)


def test_the_shipped_config_builds_into_typed_sections():
    config = build(sections.RunConfig, compose([]), extra=["digits", "operands", "wording"])
    assert config.engine.dtype == "float32" and config.engine.kv_cache_gib == 4
    assert config.sampling.temperature == 0.0 and isinstance(config.sampling.temperature, float)
    assert config.answer.stop == ("\n", ". ") and config.filler.points == 5
    assert set(config.prompts) == {"chat", "human_assistant", "plain"}
    assert config.model.name == "qwen2.5-coder-0.5b-instruct" and config.model.source == "packaged"


@pytest.mark.parametrize(
    "section,block,message",
    [
        (sections.Sampling, {"temperature": True}, "sampling.temperature=True is not allowed: must be a number ≥ 0"),
        (
            sections.Sampling,
            {"temperature": float("nan")},
            "sampling.temperature=nan is not allowed: must be a number ≥ 0",
        ),
        (sections.Sampling, {"top_p": 0}, "sampling.top_p=0 is not allowed: must be a number > 0 and ≤ 1"),
        (sections.Sampling, {"max_tokens": 2.0}, "sampling.max_tokens=2.0 is not allowed: must be a whole number ≥ 1"),
        (
            sections.Sampling,
            {"temprature": 1},
            "sampling.temprature is not a setting: choose from ['temperature', 'top_p', 'top_k', 'max_tokens']",
        ),
        (sections.Answer, {"stop": "\n"}, "answer.stop='\\n' is not allowed: must be a list of strings"),
        (
            sections.EngineSettings,
            {"enforce_eager": "yes"},
            "engine.enforce_eager='yes' is not allowed: must be true or false",
        ),
        (
            sections.EngineSettings,
            {"block_size": 0},
            "engine.block_size=0 is not allowed: must be null or a whole number ≥ 1",
        ),
        (
            sections.EngineSettings,
            {"gpu_memory_utilization": 1.5},
            "engine.gpu_memory_utilization=1.5 is not allowed: must be a number > 0 and ≤ 1",
        ),
        (
            sections.Mistakes,
            {"writer": "magic"},
            "mistakes.writer='magic' is not allowed: choose one of ['rule', 'model', 'auto']",
        ),
        (sections.Sampling, [1, 2], "sampling=[1, 2] is not allowed: must be a group of settings"),
    ],
)
def test_a_bad_value_is_one_line_naming_key_value_and_what_is_allowed(section, block, message):
    prefix = {
        sections.Sampling: "sampling.",
        sections.Answer: "answer.",
        sections.EngineSettings: "engine.",
        sections.Mistakes: "mistakes.",
    }[section]
    shipped = compose([])[prefix.rstrip(".")]  # every other key as conf/config.yaml sets it
    with pytest.raises(ConfigError) as error:
        build(section, {**shipped, **block} if isinstance(block, dict) else block, prefix)
    assert str(error.value) == message


def test_null_is_allowed_only_where_the_type_says_so():
    engine = compose([])["engine"]
    assert build(sections.EngineSettings, {**engine, "max_model_len": None}, "engine.").max_model_len is None
    with pytest.raises(ConfigError, match=r"engine.dtype=None is not allowed: choose one of \['auto'"):
        build(sections.EngineSettings, {**engine, "dtype": None}, "engine.")


def test_only_the_tasks_own_keys_pass_beside_the_declared_ones():
    cfg = compose(["model=hf", "model.path=org/name"])
    assert (
        build(sections.RunConfig, cfg, extra=["digits", "operands", "wording"]).model.source == "hf"
    )  # addition's keys pass
    with pytest.raises(ConfigError, match=r"^subject is not a setting: choose from \['task', 'n'.*'wording'\]$"):
        build(sections.RunConfig, {**cfg, "subject": "x"}, extra=["digits", "operands", "wording"])
    with pytest.raises(ConfigError, match="engine.speed is not a setting"):
        build(
            sections.RunConfig,
            {**cfg, "engine": {**cfg["engine"], "speed": 1}},
            extra=["digits", "operands", "wording"],
        )
    with pytest.raises(ConfigError, match="model.revison is not a setting"):
        build(
            sections.RunConfig,
            {**cfg, "model": {**cfg["model"], "revison": "main"}},
            extra=["digits", "operands", "wording"],
        )


def test_a_missing_required_key_names_it():
    cfg = compose([])
    del cfg["model"]
    with pytest.raises(ConfigError, match="^model is missing: the subject model$"):
        build(sections.RunConfig, cfg, extra=["digits", "operands", "wording"])
