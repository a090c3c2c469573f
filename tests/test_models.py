"""Hub models fail fast, in one line, when they cannot be fetched (no network, no such model)."""

import huggingface_hub
import pytest
from huggingface_hub import errors

from faithfulness.errors import ConfigError, StateError
from faithfulness.models import check_hub, resolve_model


def _error(cls, message):
    error = cls.__new__(cls)  # hub errors want an HTTP response; the message is all that matters here
    Exception.__init__(error, message)
    return error


def test_an_unreachable_hub_is_a_state_error_naming_the_host(monkeypatch):
    def offline(*args, **kwargs):
        raise ConnectionError("[Errno -2] Name or service not known")

    monkeypatch.setattr(huggingface_hub, "model_info", offline)
    with pytest.raises(StateError) as error:
        resolve_model({"source": "hf", "path": "org/name"}, "/tmp")
    assert str(error.value).startswith("model.path='org/name' needs the Hugging Face hub, but huggingface.co cannot be "
                                       "reached (ConnectionError: [Errno -2] Name or service not known)")  # fmt: skip
    assert "HF_HUB_OFFLINE=1" in str(error.value) and "\n" not in str(error.value)


def test_a_model_the_hub_does_not_have_is_a_config_error(monkeypatch):
    def missing(*args, **kwargs):
        raise _error(errors.RepositoryNotFoundError, "404 Client Error\nmore details")

    monkeypatch.setattr(huggingface_hub, "model_info", missing)
    with pytest.raises(ConfigError, match=r"^model.path='org/nope' \(revision v1\) is not a model on huggingface.co you can read: 404 Client Error$"):
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
    assert resolve_model({"source": "hf", "path": str(tmp_path)}, "/tmp").revision == "local"
