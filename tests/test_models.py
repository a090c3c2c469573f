"""Models: hub models fail fast, in one line, when they cannot be fetched; packaged ones convert quietly."""

import os
from pathlib import Path

import huggingface_hub
import pytest
from huggingface_hub import errors

from faithfulness.config.sections import ModelSpec
from faithfulness.errors import ConfigError, StateError
from faithfulness.models import check_hub, convert_gguf, resolve_model


def _error(cls, message):
    error = cls.__new__(cls)  # hub errors want an HTTP response; the message is all that matters here
    Exception.__init__(error, message)
    return error


def test_an_unreachable_hub_is_a_state_error_naming_the_host(monkeypatch):
    def offline(*args, **kwargs):
        raise ConnectionError("[Errno -2] Name or service not known")

    monkeypatch.setattr(huggingface_hub, "model_info", offline)
    with pytest.raises(StateError) as error:
        resolve_model(ModelSpec(name="m", source="hf", path="org/name"), "/tmp")
    assert str(error.value).startswith(
        "model.path='org/name' needs the Hugging Face hub, but huggingface.co cannot be "
        "reached (ConnectionError: [Errno -2] Name or service not known)"
    )
    assert "HF_HUB_OFFLINE=1" in str(error.value) and "\n" not in str(error.value)


def test_a_model_the_hub_does_not_have_is_a_config_error(monkeypatch):
    def missing(*args, **kwargs):
        raise _error(errors.RepositoryNotFoundError, "404 Client Error\nmore details")

    monkeypatch.setattr(huggingface_hub, "model_info", missing)
    with pytest.raises(
        ConfigError,
        match=r"^model.path='org/nope' \(revision v1\) is not a model on huggingface.co you can read: 404 Client Error$",
    ):
        check_hub("org/nope", "v1")


def test_offline_mode_needs_the_model_in_the_local_cache(monkeypatch):
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    monkeypatch.setattr(huggingface_hub, "try_to_load_from_cache", lambda *a, **k: None)
    with pytest.raises(StateError, match="is not in the local Hugging Face cache and HF_HUB_OFFLINE is set"):
        check_hub("org/name", None)
    monkeypatch.setattr(huggingface_hub, "try_to_load_from_cache", lambda *a, **k: "/cache/config.json")
    check_hub("org/name", None)  # cached: no network needed


def test_local_model_folders_need_no_hub(tmp_path, monkeypatch):
    monkeypatch.setattr(huggingface_hub, "model_info", lambda *a, **k: pytest.fail("the hub was asked"))
    (tmp_path / "config.json").write_text("{}")
    assert resolve_model(ModelSpec(name="m", source="hf", path=str(tmp_path)), "/tmp").revision == "local"


def test_conversion_keeps_transformers_bars_off_the_console(smollm2_tokenizer, tmp_path, capfd):
    cache = Path(os.path.expanduser(os.environ.get("FAITHFULNESS_CACHE", "~/.cache/faithfulness")))
    gguf = cache / "gguf" / "smollm2-135m-instruct.gguf"  # assembled when the fixture resolved the packaged model
    capfd.readouterr()
    convert_gguf(gguf, tmp_path / "model")
    out, err = capfd.readouterr()
    log = tmp_path / "model.convert.log"
    assert (
        out.strip()
        == f"converting {gguf.name} to safetensors in {tmp_path / 'model'} (once; transformers' output in {log})"
    )
    assert "de-quantizing" not in err and "de-quantizing" in log.read_text()  # transformers' bar went to the log
    assert (tmp_path / "model" / ".complete").read_text() == gguf.name + "\n"
    assert (tmp_path / "model" / "config.json").exists() and not (tmp_path / "model.partial").exists()
