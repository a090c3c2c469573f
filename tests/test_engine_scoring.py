"""Teacher-forced scoring's plan (pure logic): which one-token requests a batch of scores needs, and their sums.

The engines themselves are tested on the real vLLM engine (test_engine.py) and a real server
(test_engine_server.py); here a made-up table of logprobs stands in for a model, since the plan is
arithmetic over token ids.
"""

import random

import pytest

from faithfulness.engines.scoring import SCORE_CHUNK, TokenMemo, plan, totals, watched_ids


def fake_logprob(prefix: tuple[int, ...], token: int) -> float:
    """A deterministic stand-in for log P(token | prefix)."""
    return -((hash((prefix, token)) % 1000) / 100.0)


def _batch(seed: int, n: int) -> tuple[list[list[int]], list[list[int]]]:
    rng = random.Random(seed)
    stems = [[rng.randrange(50) for _ in range(rng.randrange(1, 6))] for _ in range(3)]  # shared prompts
    prompts = [rng.choice(stems) + [rng.randrange(50)] * rng.randrange(2) for _ in range(n)]
    conts = [[rng.randrange(50) for _ in range(rng.randrange(1, 5))] for _ in range(n)]
    return prompts, conts


@pytest.mark.parametrize("seed", range(8))
def test_every_token_is_asked_once_at_its_own_prefix_and_the_sums_are_exact(seed):
    prompts, conts = _batch(seed, 150)
    known = [(0, 0.0)] * len(prompts)
    targets = plan(prompts, conts, known)
    wanted = {(tuple(p) + tuple(c[:j]), c[j]) for p, c in zip(prompts, conts) for j in range(len(c))}
    assert {(prefix, t) for prefix, ts in targets.items() for t in ts} == wanted  # each once, none extra
    logprob = {prefix: {t: fake_logprob(prefix, t) for t in ts} for prefix, ts in targets.items()}
    expected = [sum(fake_logprob(tuple(p) + tuple(c[:j]), c[j]) for j in range(len(c))) for p, c in zip(prompts, conts)]
    assert totals(prompts, conts, known, logprob) == pytest.approx(expected, abs=1e-12)


def test_within_a_chunk_all_first_tokens_are_sent_before_any_second_one():
    prompts = [[1, 2, i] for i in range(SCORE_CHUNK)]
    conts = [[7, 8]] * SCORE_CHUNK
    order = list(plan(prompts, conts, [(0, 0.0)] * SCORE_CHUNK))
    depth = [len(prefix) - 3 for prefix in order]  # 0: the first token's request, 1: the second's
    assert depth == sorted(depth) and depth.count(0) == depth.count(1) == SCORE_CHUNK


def test_tokens_a_remembered_generation_sampled_or_watched_are_not_asked_again():
    memo = TokenMemo()
    # the model generated 5, 6, 9 after [1, 2]; at the third step it also watched token 4
    memo.remember([1, 2], [5, 6, 9], [{5: -0.5}, {6: -0.25}, {9: -0.125, 4: -3.0}], watched=True)
    assert memo.known([1, 2], [5, 6, 9, 3]) == (3, -0.875)  # the generation's own tokens
    assert memo.known([1, 2], [5, 6, 4]) == (3, -3.75)  # parted at the watched token: known too
    assert memo.known([1, 2], [5, 7]) == (1, -0.5)  # parted at a token nobody watched
    assert memo.known([1, 3], [5]) == (0, 0.0)  # another prompt
    known = [memo.known([1, 2], [5, 6, 9, 3])]
    targets = plan([[1, 2]], [[5, 6, 9, 3]], known)
    assert targets == {(1, 2, 5, 6, 9): {3}}  # only the token past the generation is asked
    assert totals([[1, 2]], [[5, 6, 9, 3]], known, {(1, 2, 5, 6, 9): {3: -1.0}}) == [-1.875]


def test_unwatched_generations_keep_only_their_sampled_tokens_and_the_memo_is_bounded():
    memo = TokenMemo(size=2)
    memo.remember([1], [5, 6], [{5: -1.0}, {6: -2.0, 4: -9.0}], watched=False)
    assert memo.known([1], [5, 4]) == (1, -1.0)  # token 4's logprob came back but was not watched: asked again
    memo.remember([2], [5], [{5: -1.0}], watched=False)
    memo.remember([3], [5], [{5: -1.0}], watched=False)
    assert memo.known([1], [5]) == (0, 0.0) and memo.known([3], [5]) == (1, -1.0)  # the oldest went first
    memo.remember([4], [], [], watched=False)  # a generation with no logprobs is not kept
    assert memo.known([4], [5]) == (0, 0.0)


def test_a_request_watching_more_tokens_than_allowed_watches_none():
    tokens = {"a": [1, 2], "b": [2, 3], "c": [4, 5, 6]}
    assert watched_ids([("a", "b"), ("a", "b", "c"), ()], tokens, limit=4) == [[1, 2, 3], [], []]
