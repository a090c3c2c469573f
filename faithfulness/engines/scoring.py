"""Teacher-forced scoring shared by the backends: which one-token requests a batch of scores needs.

A score is log P(continuation | prompt), summed over the continuation's tokens. Token j is asked by a
one-token request whose prompt is the prompt plus tokens < j, with that token's logprob watched
(vLLM's ``logprob_token_ids``); requests with the same prefix are merged. A token that a recent
generation from the same prompt already sampled (or watched) is not asked again: its logprob is the
same quantity (raw logprobs, same context). Both the in-process engine and the server backend plan
their requests here, so they ask the same questions and add up the same numbers.
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Sequence

import numpy as np

SCORE_CHUNK = 64  # requests whose scoring prompts stay in the KV cache together (64 × ~500 tokens)
# recent generations whose token logprobs `score` reuses (~30 MB: int32 ids, float32 logprobs, watched
# tokens' of answers)
TOKEN_MEMO = 16384

Prefix = tuple[int, ...]


class TokenMemo:
    """Recent generations' token ids, their logprobs and the watched tokens' logprobs, by prompt, oldest first."""

    def __init__(self, size: int = TOKEN_MEMO) -> None:
        self.size = size
        self._memo: OrderedDict[bytes, tuple[np.ndarray, np.ndarray, tuple[np.ndarray, np.ndarray] | None]] = (
            OrderedDict()
        )

    def remember(
        self, prompt_ids: Sequence[int], token_ids: Sequence[int], steps: Sequence[dict[int, float]], watched: bool
    ) -> None:
        """Keeps one generation: its sampled ``token_ids`` and, per position, the logprobs that came back.

        Args:
            prompt_ids: The prompt's token ids.
            token_ids: The generated token ids.
            steps: Per generated position, token id → logprob (the sampled token's among them).
            watched: Whether ``steps`` also hold watched tokens (kept then, for :meth:`known`).
        """
        if not steps:
            return
        ids = np.asarray(token_ids, dtype=np.int32)
        lps = np.asarray([step[t] for t, step in zip(token_ids, steps)], dtype=np.float32)
        seen = None
        if watched:  # per position, every token whose logprob came back (the watched and the sampled one), -1 padded
            width = max(len(step) for step in steps)
            seen = (np.full((len(ids), width), -1, np.int32), np.zeros((len(ids), width), np.float32))
            for j, step in enumerate(steps):
                seen[0][j, : len(step)] = list(step)
                seen[1][j, : len(step)] = list(step.values())
        key = np.asarray(prompt_ids, dtype=np.int32).tobytes()
        self._memo.pop(key, None)
        self._memo[key] = (ids, lps, seen)
        while len(self._memo) > self.size:
            self._memo.popitem(last=False)

    def clear(self) -> None:
        """Forgets every generation (the next scores are all teacher-forced)."""
        self._memo.clear()

    def known(self, prompt: Sequence[int], cont: Sequence[int]) -> tuple[int, float]:
        """How many leading tokens of ``cont`` a remembered generation from ``prompt`` already scored, and their sum.

        The model's own greedy answer usually is the answer being scored (the original, or the correct
        one): its tokens were produced with exactly the context the teacher-forced request would build.
        Where the two part, the generation's step there had that same context too: if it kept the
        logprob of ``cont``'s token (``GenerationRequest.score``), that one is known as well.
        """
        hit = self._memo.get(np.asarray(prompt, dtype=np.int32).tobytes())
        if hit is None:
            return 0, 0.0
        ids, lps, seen = hit
        m = 0
        while m < min(len(cont), len(ids)) and ids[m] == cont[m]:
            m += 1
        total = float(lps[:m].sum())
        if seen is not None and m < min(len(cont), len(ids)):
            where = np.flatnonzero(seen[0][m] == cont[m])
            if where.size:
                return m + 1, total + float(seen[1][m, where[0]])
        return m, total


def watched_ids(
    texts_per_request: Sequence[tuple[str, ...]], tokens: dict[str, list[int]], limit: int
) -> list[list[int]]:
    """Per request, the token ids of its ``score`` continuations to watch (none past ``limit`` per request)."""
    watch = [sorted({i for t in texts for i in tokens[t]}) for texts in texts_per_request]
    return [w if len(w) <= limit else [] for w in watch]  # too many: `score` asks them itself


def plan(
    prompts: Sequence[Sequence[int]], conts: Sequence[Sequence[int]], known: Sequence[tuple[int, int | float]]
) -> dict[Prefix, set[int]]:
    """The one-token requests scoring needs: prefix → the token ids whose logprob is asked there, in send order.

    Order: in chunks of requests, all first tokens, then all second tokens, ... Same-prefix requests
    scheduled in one engine step all miss the cache; spaced out, later ones hit.
    """
    targets: dict[Prefix, set[int]] = {}
    for start in range(0, len(prompts), SCORE_CHUNK):
        chunk = list(
            zip(
                prompts[start : start + SCORE_CHUNK],
                conts[start : start + SCORE_CHUNK],
                known[start : start + SCORE_CHUNK],
            )
        )
        for j in range(max(len(cont) for _, cont, _ in chunk)):
            for prompt, cont, (m, _) in chunk:
                if m <= j < len(cont):
                    targets.setdefault(tuple(prompt) + tuple(cont[:j]), set()).add(cont[j])
    return targets


def totals(
    prompts: Sequence[Sequence[int]],
    conts: Sequence[Sequence[int]],
    known: Sequence[tuple[int, float]],
    logprob: dict[Prefix, dict[int, float]],
) -> list[float]:
    """Each continuation's summed logprob: its known leading tokens' plus the asked ones' (logprob[prefix][token])."""
    return [
        total + sum(logprob[tuple(prompt) + tuple(cont[:j])][token] for j, token in enumerate(cont) if j >= m)
        for prompt, cont, (m, total) in zip(prompts, conts, known)
    ]
