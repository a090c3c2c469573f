"""The engine path against the real vLLM engine on CPU, with the tiny random model."""

import pytest

from faithfulness.engines import GenerationRequest


def test_outputs_come_back_in_request_order_with_token_counts(tiny_engine):
    requests = [GenerationRequest(f"<|im_start|>user\nprompt {i}", max_tokens=3 + i) for i in range(4)]
    completions = tiny_engine.generate(requests, desc="test")
    assert len(completions) == 4
    for i, c in enumerate(completions):
        assert c.generated_tokens <= 3 + i
        assert c.finish_reason in ("stop", "length")
        assert c.prompt_tokens == len(f"<|im_start|>user\nprompt {i}") - len("<|im_start|>") + 1  # bytes + 1 special


def test_seeded_samples_do_not_depend_on_their_batch(tiny_engine):
    make = lambda seed: GenerationRequest(
        "<|im_start|>user\nsample", max_tokens=12, temperature=0.8, top_p=0.95, seed=seed
    )  # noqa: E731
    alone = tiny_engine.generate([make(1), make(2)], desc="test")
    crowded = tiny_engine.generate([make(3), make(2), make(4), make(1)], desc="test")
    assert crowded[3].text == alone[0].text and crowded[1].text == alone[1].text
    assert alone[0].text != alone[1].text  # different seeds, different samples


def test_shared_prefixes_are_read_from_the_cache(tiny_engine):
    prefix = "<|im_start|>user\n" + "shared context " * 20
    requests = [GenerationRequest(prefix + f"question {i}", max_tokens=1) for i in range(6)]
    tiny_engine.generate(requests[:1], desc="warm")
    completions = tiny_engine.generate(requests[1:], desc="test")
    assert all(c.cached_tokens >= 256 for c in completions)  # whole 32-token blocks of the ~300-byte prefix
    assert all(c.cached_tokens < c.prompt_tokens for c in completions)


def test_each_generate_is_one_engine_call(tiny_engine):
    before = dict(tiny_engine.counters)
    tiny_engine.generate([GenerationRequest("<|im_start|>user\nx", max_tokens=1)] * 5, desc="test")
    assert tiny_engine.counters["calls"] == before["calls"] + 1
    assert tiny_engine.counters["requests"] == before["requests"] + 5
    assert tiny_engine.info()["engine"] == "vllm-cpu" and tiny_engine.info()["engine_block_size"] == 32


def test_scores_match_the_models_own_token_logprobs(tiny_engine):
    """Teacher-forced scores equal the logprobs of greedy generation, token by token, and add up."""
    from faithfulness.engines import ScoreRequest

    prompt = "<|im_start|>user\nscore me" + " please" * 40
    greedy = tiny_engine.generate([GenerationRequest(prompt, max_tokens=3)], desc="test")[0].text
    one, two, whole = tiny_engine.score(
        [ScoreRequest(prompt, greedy[:1]), ScoreRequest(prompt + greedy[:1], greedy[1:]), ScoreRequest(prompt, greedy)],
        desc="test",
    )
    assert whole == pytest.approx(one + two, abs=1e-4)
    assert whole < 0
    tiny_engine._memo.clear()  # count teacher-forced requests only (the greedy answer above is remembered)
    before = dict(tiny_engine.counters)
    tiny_engine.score([ScoreRequest(prompt, " 12"), ScoreRequest(prompt, " 13")], desc="test")
    assert tiny_engine.counters["calls"] == before["calls"] + 1
    # " 12" and " 13" share their first two tokens: 3 unique prefixes, not 6 requests
    assert tiny_engine.counters["requests"] - before["requests"] == 3
    assert tiny_engine.counters["cached_tokens"] - before["cached_tokens"] > 0


def test_scores_reuse_the_logprobs_of_the_models_own_generation(tiny_engine):
    """A continuation the model generated itself is scored from that generation: same values, fewer requests."""
    from faithfulness.engines import ScoreRequest

    prompts = [f"<|im_start|>user\nanswer {i}" + " please" * 30 for i in range(3)]
    greedy = [c.text for c in tiny_engine.generate([GenerationRequest(p, max_tokens=4) for p in prompts], desc="test")]
    requests = [ScoreRequest(p, g) for p, g in zip(prompts, greedy)] + [
        ScoreRequest(p, g[:2] + "~") for p, g in zip(prompts, greedy)
    ]
    before = dict(tiny_engine.counters)
    reused = tiny_engine.score(requests, desc="test")
    asked = tiny_engine.counters["requests"] - before["requests"]
    assert asked == 3  # only each prompt's "~", the one token no generation sampled there
    tiny_engine._memo.clear()
    before = dict(tiny_engine.counters)
    fresh = tiny_engine.score(requests, desc="test")
    assert tiny_engine.counters["requests"] - before["requests"] > asked
    assert reused == pytest.approx(fresh, abs=1e-4)


def test_continuations_named_in_a_generation_are_scored_from_it(tiny_engine):
    """``GenerationRequest.score``: where the generation passed, its step already holds the continuation's logprob."""
    from faithfulness.engines import ScoreRequest

    prompts = [f"<|im_start|>user\nchoose {i}" + " please" * 30 for i in range(3)]
    letters = ("A", "B", "C")
    tiny_engine._memo.clear()
    tiny_engine.generate([GenerationRequest(p, max_tokens=4, score=(*letters, " 12")) for p in prompts], desc="test")
    single = [ScoreRequest(p, x) for p in prompts for x in letters]  # one token each: the generation's first step
    double = [ScoreRequest(p, " 12") for p in prompts]  # three byte tokens: the first known, the rest asked
    before = dict(tiny_engine.counters)
    reused = tiny_engine.score(single, desc="test")
    assert tiny_engine.counters["requests"] == before["requests"] and tiny_engine.counters["calls"] == before["calls"]
    reused_double = tiny_engine.score(double, desc="test")
    asked = tiny_engine.counters["requests"] - before["requests"]
    tiny_engine._memo.clear()
    before = dict(tiny_engine.counters)
    fresh, fresh_double = tiny_engine.score(single, desc="test"), tiny_engine.score(double, desc="test")
    # fresh: one request per prompt for the letters (same prefix) and one per token of " 12"; reused: at most its last two
    assert tiny_engine.counters["requests"] - before["requests"] == len(prompts) * (1 + 3) and asked <= len(prompts) * 2
    assert reused == pytest.approx(fresh, abs=1e-5) and reused_double == pytest.approx(fresh_double, abs=1e-5)
    assert len(set(reused)) > 1  # three letters, different logprobs: not one value copied
