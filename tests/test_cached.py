"""The caching and lazy engine wrappers on the real vLLM engine (tiny random model, shared engine)."""

import math
import time

import pytest

from faithfulness.engines import GenerationRequest, ScoreRequest, describe_engine, zero_counters
from faithfulness.engines.cached import CachedEngine, LazyEngine
from faithfulness.errors import StateError
from faithfulness.models import ResolvedModel
from faithfulness.pipeline import _stage
from faithfulness.store import STORE_FILE, RequestStore, request_context
from tests.conftest import ENGINE_SETTINGS


def _requests(names, max_tokens=6):
    return [GenerationRequest(f"<|im_start|>user\n{name}", max_tokens=max_tokens) for name in names]


@pytest.fixture
def cached(tiny_engine, tiny_model_dir, tmp_path):
    store = RequestStore(tmp_path / STORE_FILE)
    context = request_context(ResolvedModel(str(tiny_model_dir), "local"), tiny_engine.info())
    yield CachedEngine(tiny_engine, store, context, chunk=3)
    store.db.close()


def test_only_misses_reach_the_engine_in_chunks_and_results_keep_request_order(cached, tiny_engine):
    first = _requests("abcdefg")
    before = dict(cached.counters)
    out = cached.generate(first, desc="test")
    spent = {k: cached.counters[k] - before[k] for k in before}
    assert spent["to_engine"] == 7 and spent["from_store"] == 0 and spent["calls"] == math.ceil(7 / 3)
    assert out == tiny_engine.generate(first, desc="direct")  # fp32: the same, whatever the batch
    assert cached.store.count() == {"test": 7}

    mixed = _requests("xcayb")  # x, y new; c, a, b stored
    before = dict(cached.counters)
    again = cached.generate(mixed, desc="test")
    spent = {k: cached.counters[k] - before[k] for k in before}
    assert spent["to_engine"] == 2 and spent["from_store"] == 3 and spent["calls"] == 1 and spent["requests"] == 2
    assert again == tiny_engine.generate(mixed, desc="direct")
    assert [again[1], again[2], again[4]] == [out[2], out[0], out[1]]


def test_a_repeated_request_is_asked_again_not_copied(cached):
    twice = _requests("rr") + _requests("r")
    before = dict(cached.counters)
    cached.generate(twice, desc="test")
    assert cached.counters["to_engine"] - before["to_engine"] == 3  # the re-ask gate needs a real second answer
    before = dict(cached.counters)
    cached.generate(twice, desc="test")
    assert (
        cached.counters["to_engine"] == before["to_engine"]
        and cached.counters["from_store"] - before["from_store"] == 3
    )


def test_scores_are_stored_and_reused_exactly(cached, tiny_engine):
    requests = [ScoreRequest("<|im_start|>user\nscore", f" {n}") for n in (12, 13, 140, 7)]
    fresh = cached.score(requests, desc="scores")
    assert fresh == tiny_engine.score(requests, desc="direct")
    before = dict(cached.counters)
    assert cached.score(requests, desc="scores") == fresh  # floats survive the store bit for bit
    assert all(isinstance(x, float) and x < 0 for x in fresh)
    assert cached.counters["calls"] == before["calls"] and cached.counters["from_store"] - before["from_store"] == 4


def test_the_lazy_engine_describes_itself_like_the_started_one_and_starts_only_for_misses(
    cached, tiny_engine, tiny_model_dir
):
    assert (
        describe_engine(str(tiny_model_dir), ENGINE_SETTINGS) == tiny_engine.info()
    )  # so keys made before the start still match
    timings = {}

    def launch():
        launch.count += 1
        return tiny_engine

    launch.count = 0
    lazy = LazyEngine(launch, describe_engine(str(tiny_model_dir), ENGINE_SETTINGS), timings)
    stored = _requests("lm")
    cached.generate(stored, desc="test")
    # keys made from the description before the start are the keys the started engine's results got
    over_lazy = CachedEngine(
        lazy, cached.store, request_context(ResolvedModel(str(tiny_model_dir), "local"), lazy.info()), 3
    )
    assert over_lazy.generate(stored, desc="test") == cached.generate(stored, desc="test")
    assert over_lazy.score([], desc="none") == [] and launch.count == 0 and timings == {}
    assert over_lazy.counters["calls"] == 0 and over_lazy.counters["from_store"] == 2
    over_lazy.generate(_requests("n"), desc="test")
    assert launch.count == 1 and timings["engine_start_s"] >= 0 and over_lazy.counters["to_engine"] == 1


def test_a_stage_that_starts_the_engine_leaves_the_start_out_of_its_seconds(cached, tiny_engine, tiny_model_dir):
    def launch():  # a slow start, as vLLM's 1-2 minutes are: a stage's time must not hold it
        time.sleep(1.0)
        return tiny_engine

    timings, stages = {"engine_start_s": 0.5}, {}  # 0.5 s: another engine's start (a writer's) shares the dict
    lazy = LazyEngine(launch, describe_engine(str(tiny_model_dir), ENGINE_SETTINGS), timings)
    over_lazy = CachedEngine(
        lazy, cached.store, request_context(ResolvedModel(str(tiny_model_dir), "local"), lazy.info()), 3
    )
    clock = time.perf_counter()
    _stage(over_lazy, _requests(["start-a", "start-b"]), "first", stages)
    elapsed = time.perf_counter() - clock
    assert lazy.start_s >= 1.0 and timings["engine_start_s"] == pytest.approx(0.5 + lazy.start_s)
    assert "start_s" not in stages["first"]  # (its counts start from the idle zeros: the shared engine's totals)
    assert stages["first"]["seconds"] == pytest.approx(elapsed - lazy.start_s, abs=0.05)  # the stage's engine work only
    _stage(over_lazy, _requests(["start-c"]), "second", stages)  # already started: nothing to leave out
    assert lazy.start_s < 1.5 and stages["second"]["requests"] == 1


def test_the_lazy_engine_counts_on_across_a_suspend_and_restart():
    class Counting:  # pure accounting: what the lazy engine adds up, not what an engine computes
        def __init__(self):
            self.counters = zero_counters()
            self.closed = False

        def generate(self, requests, desc):
            self.counters["calls"] += 1
            self.counters["requests"] += len(requests)
            return [None] * len(requests)

        def close(self):
            self.closed = True

        def info(self):
            return {}

    started, calls = [], []
    lazy = LazyEngine(lambda: started.append(Counting()) or started[-1], {}, {}, lambda: calls.append(len(started)))
    lazy.generate([], desc="nothing to do")  # no request: no start, so the other engine is left alone
    assert not started and not calls
    before = dict(lazy.counters)
    lazy.generate(_requests("ab"), desc="test")
    lazy.suspend()  # e.g. a separate mistake writer needs the memory
    lazy.generate(_requests("cde"), desc="test")  # a fresh engine, counting from 0
    spent = {k: lazy.counters[k] - before[k] for k in before}
    assert len(started) == 2 and started[0].closed and not started[1].closed
    assert calls == [0, 1]  # before_start ran before each start (closing, e.g., the subject's engine)
    assert spent["calls"] == 2 and spent["requests"] == 5 and min(spent.values()) >= 0


def test_an_engine_that_is_not_the_described_one_stops_the_run_when_it_starts():
    class Swapped:  # a server replaced between the run's checks and its first request: another vLLM
        counters = zero_counters()

        def info(self):
            return {"engine": "vllm-server", "engine_version": "0.33.0", "engine_served_model": "b"}

    described = {"engine": "vllm-server", "engine_version": "0.32.0", "engine_served_model": "a"}
    with pytest.raises(StateError) as error:
        LazyEngine(Swapped, described, {}).generate(_requests("a"), desc="test")
    assert str(error.value) == (
        "the engine started is not the one this run was checked against: "
        "{'engine_version': '0.33.0'}, not {'engine_version': '0.32.0'}"
    )
    # where it runs (the served name) may differ: the same model and vLLM give the same results
    same = {**described, "engine_served_model": "b", "engine_version": "0.33.0"}
    assert LazyEngine(Swapped, same, {})._started().info() == Swapped().info()
