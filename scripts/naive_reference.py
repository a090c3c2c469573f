"""The naive reference of the benchmark: transformers ``generate``, one prompt at a time.

This is how the public replication code of Lanham et al. 2023 answers its prompts: batch size 1,
no prefix reuse, every prompt prefilled from scratch. It is a yardstick for ``scripts/bench.py``,
not a library feature: it replays the harness's exact requests (same text, token ids, max_tokens,
stop strings, greedy decoding, dtype) so both ways do the same work and should give the same answers.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from faithfulness.engines import GenerationRequest, ScoreRequest


@dataclass(frozen=True)
class NaiveResult:
    """One request answered by the reference.

    Attributes:
        seconds: Wall time of this request alone (tokenising, prefill, decoding, detokenising).
        cpu_seconds: CPU time of this process (all threads) over the same span.
        prompt_tokens: Prompt length (every token is computed: there is no cache).
        generated_tokens: Tokens decoded (0 for a score request: one forward pass).
        text: Generated text, cut at the first stop string like vLLM does (None for scores).
        logprob: Summed log-probability of the continuation (None for generations).
    """

    seconds: float
    cpu_seconds: float
    prompt_tokens: int
    generated_tokens: int
    text: str | None = None
    logprob: float | None = None


class NaiveReference:
    """A Hugging Face causal LM answering requests one by one.

    Args:
        model_dir: The same converted model folder the engine loads.
        dtype: The engine's dtype (``float32`` by default), so greedy answers can match.
    """

    def __init__(self, model_dir: str, dtype: str) -> None:
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer

        self.torch = torch
        self.tokenizer = AutoTokenizer.from_pretrained(model_dir)
        torch_dtype = getattr(torch, dtype) if dtype not in ("auto", None) else torch.float32
        self.model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch_dtype).eval()
        config = self.model.generation_config
        eos = config.eos_token_id if isinstance(config.eos_token_id, list) else [config.eos_token_id]
        # vLLM stops on the tokenizer's EOS and on every EOS id of generation_config.json
        self.eos = sorted({t for t in [*eos, self.tokenizer.eos_token_id] if t is not None})
        self.pad = self.tokenizer.pad_token_id if self.tokenizer.pad_token_id is not None else self.eos[0]

    def generate(self, request: GenerationRequest) -> NaiveResult:
        """Greedy ``generate`` at batch size 1 with the request's limits and stop strings."""
        from transformers import GenerationConfig

        if request.temperature != 0.0:
            raise ValueError("the naive reference replays greedy requests only (sampling.temperature=0)")
        clock, cpu = time.perf_counter(), time.process_time()
        ids = self.tokenizer(request.prompt, add_special_tokens=False, return_tensors="pt")["input_ids"]
        config = GenerationConfig(
            max_new_tokens=request.max_tokens,
            do_sample=False,
            eos_token_id=self.eos,
            pad_token_id=self.pad,
            stop_strings=list(request.stop) or None,
        )
        with self.torch.inference_mode():
            out = self.model.generate(
                ids, attention_mask=self.torch.ones_like(ids), generation_config=config, tokenizer=self.tokenizer
            )
        new = out[0, ids.shape[1] :].tolist()
        text = self.tokenizer.decode(new, skip_special_tokens=True)
        cuts = [text.find(s) for s in request.stop if s in text]
        text = text[: min(cuts)] if cuts else text  # vLLM drops the stop string and what follows it
        return NaiveResult(time.perf_counter() - clock, time.process_time() - cpu, ids.shape[1], len(new), text=text)

    def score(self, request: ScoreRequest) -> NaiveResult:
        """One forward pass over prompt + continuation; the continuation's log-probability."""
        clock, cpu = time.perf_counter(), time.process_time()
        prompt = self.tokenizer(request.prompt, add_special_tokens=False)["input_ids"]
        cont = self.tokenizer(request.continuation, add_special_tokens=False)["input_ids"]
        ids = self.torch.tensor([prompt + cont])
        with self.torch.inference_mode():
            logits = self.model(ids).logits[0, len(prompt) - 1 : -1].float()
        logprobs = logits.log_softmax(-1).gather(-1, self.torch.tensor(cont)[:, None]).sum().item()
        return NaiveResult(time.perf_counter() - clock, time.process_time() - cpu, len(prompt), 0, logprob=logprobs)

    def answer(self, request: Any) -> NaiveResult:
        """Dispatches a recorded request to ``generate`` or ``score``."""
        return self.score(request) if isinstance(request, ScoreRequest) else self.generate(request)
