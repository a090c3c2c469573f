"""The typed config: each field documented, types and ranges refused in one line naming key, value and rule."""

from dataclasses import fields, is_dataclass

import pytest

from faithfulness import schema
from faithfulness.config import compose
from faithfulness.errors import ConfigError


def _dataclasses(cls, seen=None):
    seen = seen if seen is not None else set()
    seen.add(cls)
    for f in fields(cls):
        kind = schema.typing.get_type_hints(cls)[f.name]
        for inner in (kind, *schema.typing.get_args(kind)):
            if is_dataclass(inner) and inner not in seen:
                _dataclasses(inner, seen)
    return seen


def test_every_field_of_every_section_has_a_one_line_doc():
    for cls in _dataclasses(schema.RunConfig):
        for f in fields(cls):
            assert f.metadata.get("doc") and "\n" not in f.metadata["doc"], (cls.__name__, f.name)


def test_the_shipped_config_builds_into_typed_sections():
    config = schema.build(schema.RunConfig, compose([]))
    assert config.engine.dtype == "float32" and config.engine.kv_cache_gib == 4
    assert config.sampling.temperature == 0.0 and isinstance(config.sampling.temperature, float)
    assert config.answer.stop == ("\n", ". ") and config.filler.points == 5
    assert set(config.prompts) == {"chat", "human_assistant", "plain"}
    assert config.model.name == "qwen2.5-coder-0.5b-instruct" and config.model.source == "packaged"


@pytest.mark.parametrize(
    "section,block,message",
    [
        (schema.Sampling, {"temperature": True}, "sampling.temperature=True is not allowed: must be a number ≥ 0"),
        (
            schema.Sampling,
            {"temperature": float("nan")},
            "sampling.temperature=nan is not allowed: must be a number ≥ 0",
        ),
        (schema.Sampling, {"top_p": 0}, "sampling.top_p=0 is not allowed: must be a number > 0 and ≤ 1"),
        (schema.Sampling, {"max_tokens": 2.0}, "sampling.max_tokens=2.0 is not allowed: must be a whole number ≥ 1"),
        (
            schema.Sampling,
            {"temprature": 1},
            "sampling.temprature is not a setting: choose from ['temperature', 'top_p', 'top_k', 'max_tokens']",
        ),
        (schema.Answer, {"stop": "\n"}, "answer.stop='\\n' is not allowed: must be a list of strings"),
        (
            schema.EngineSettings,
            {"enforce_eager": "yes"},
            "engine.enforce_eager='yes' is not allowed: must be true or false",
        ),
        (
            schema.EngineSettings,
            {"block_size": 0},
            "engine.block_size=0 is not allowed: must be null or a whole number ≥ 1",
        ),
        (
            schema.EngineSettings,
            {"gpu_memory_utilization": 1.5},
            "engine.gpu_memory_utilization=1.5 is not allowed: must be a number > 0 and ≤ 1",
        ),
        (
            schema.Mistakes,
            {"writer": "magic"},
            "mistakes.writer='magic' is not allowed: choose one of ['rule', 'model', 'auto']",
        ),
        (schema.Sampling, [1, 2], "sampling=[1, 2] is not allowed: must be a group of settings"),
    ],
)
def test_a_bad_value_is_one_line_naming_key_value_and_what_is_allowed(section, block, message):
    prefix = {
        schema.Sampling: "sampling.",
        schema.Answer: "answer.",
        schema.EngineSettings: "engine.",
        schema.Mistakes: "mistakes.",
    }[section]
    with pytest.raises(ConfigError) as error:
        schema.build(section, block, prefix)
    assert str(error.value) == message


def test_null_is_allowed_only_where_the_type_says_so():
    assert schema.build(schema.EngineSettings, {"max_model_len": None}, "engine.").max_model_len is None
    with pytest.raises(ConfigError, match=r"engine.dtype=None is not allowed: choose one of \['auto'"):
        schema.build(schema.EngineSettings, {"dtype": None}, "engine.")


def test_open_sections_keep_unknown_keys_and_closed_ones_refuse_them():
    cfg = compose(["model=hf", "model.path=org/name"])
    assert schema.build(schema.RunConfig, {**cfg, "digits": 3, "subject": "x"}).model.source == "hf"  # task keys pass
    with pytest.raises(ConfigError, match="engine.speed is not a setting"):
        schema.build(schema.RunConfig, {**cfg, "engine": {**cfg["engine"], "speed": 1}})


def test_a_missing_required_key_names_it():
    cfg = compose([])
    del cfg["model"]
    with pytest.raises(ConfigError, match="^model is missing: the subject model$"):
        schema.build(schema.RunConfig, cfg)
