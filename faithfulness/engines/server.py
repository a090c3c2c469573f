"""The server backend (``engine=server``): a running vLLM OpenAI-compatible server does the engine work.

Prompts are rendered and tokenized here, with the tokenizer of ``model.path`` (tokenizer files only,
no weights), and sent as token ids to ``/v1/completions``, so the server sees exactly the tokens the
in-process engine would. Scores are the same one-token, ``logprob_token_ids`` requests the in-process
engine plans (``faithfulness/engines/scoring.py``), so the server's prefix cache does the same work.
Every request of a stage is in flight at once, up to ``engine.max_concurrency``, through the async
``openai`` client (its retries, backoff and timeouts). docs/server.md has the recipe and what each
setting does.

Before any results folder, :func:`describe` checks the server: it answers, it serves one model (or
``engine.served_model``), its tokenizer agrees with the local one, and (when it reports it) its
dtype is ``engine.dtype``. The URL and the key are not part of what a run is: a run resumed against
another server of the same model and vLLM version takes every stored response.
"""

from __future__ import annotations

import asyncio
import functools
import os
import sys
from typing import Any, Awaitable, Callable, Sequence, TypeVar

import httpx
import openai

from faithfulness.engines import Completion, GenerationRequest, ScoreRequest, scoring, zero_counters
from faithfulness.errors import ConfigError, StateError

NAME = "vllm-server"  # the rows' engine column: a vLLM engine behind its OpenAI-compatible server
MAX_WATCHED = 128  # vLLM's MAX_LOGPROB_TOKEN_IDS: token ids one request may watch (as in-process)
# one-token scoring prompts per HTTP request: one request each costs ~8 ms of client and server work on
# 2 cores, as much as the prefill of a cached prompt (docs/performance.md, "The server backend")
SCORE_BATCH = 32
PROBE_TIMEOUT_S = 10.0  # the checks before a run: a server that does not answer in this is unreachable
INFO_TIMEOUT_S = 60.0  # /server_info gathers the server's whole environment on its first call
# vLLM's SamplingParams defaults, which the in-process engine runs with: a server fills every field a request
# leaves out from the model's generation_config.json (Qwen2.5's sets repetition_penalty), so each is sent
NEUTRAL = {"repetition_penalty": 1.0, "presence_penalty": 0.0, "frequency_penalty": 0.0, "min_p": 0.0}
CLAMPED = -9999.0  # the server writes a -inf logprob as this (JSON has no infinity): read back as -inf
# text whose tokens must agree between the local tokenizer and the server's: digits, options, markup, non-ASCII
PROBE = "Q: 1234 + 5678 = ?\nA: (B) 6912. Let's think step by step: «naïve» café, 漢字, emoji 🙂, tabs\tand  spaces."
T = TypeVar("T")


def settings_of(settings: dict[str, Any]) -> dict[str, Any]:
    """The server settings of an ``engine`` block, with their defaults (tests pass partial blocks)."""
    return {
        "url": settings.get("url"),
        "api_key_env": settings.get("api_key_env"),
        "served_model": settings.get("served_model"),
        "max_concurrency": settings.get("max_concurrency") or 256,  # a CPU vLLM's max_num_seqs: a stage in flight
        "timeout_s": settings.get("timeout_s") or 600.0,  # one request; a long CoT on a busy server takes minutes
        "max_retries": settings.get("max_retries", 3),
        "dtype": settings.get("dtype", "auto"),
    }


def check(settings: dict[str, Any]) -> None:
    """The server settings a run needs, checked with the rest of the config (no server is contacted).

    Raises:
        ConfigError: for a missing or malformed URL, or a key variable that is not set.
    """
    s = settings_of(settings)
    url = s["url"]
    example = "engine=server needs the server's URL, e.g. http://host:8000/v1"
    if not isinstance(url, str) or not url.startswith(("http://", "https://")):
        raise ConfigError(f"engine.url={url!r} is not allowed: {example}")
    try:
        parsed = httpx.URL(url)
        parsed.port  # noqa: B018 - a port that is not a number raises here
    except (httpx.InvalidURL, ValueError):
        raise ConfigError(f"engine.url={url!r} is not allowed: not a URL; {example}") from None
    if parsed.userinfo:
        raise ConfigError(
            "engine.url holds a user or password, which would be written to the config: "
            "put the key in an environment variable and name it in engine.api_key_env"
        )
    name = s["api_key_env"]
    if name is not None and not os.environ.get(name):
        raise ConfigError(
            f"engine.api_key_env={name!r} is not allowed: no such environment variable is set "
            "(it names the variable that holds the key; the key itself is never written to a config)"
        )


def describe(model: str, settings: dict[str, Any]) -> dict[str, Any]:
    """Checks the server against the model and returns what :meth:`ServerEngine.info` will report.

    Raises:
        StateError: when the server is unreachable, serves another model, or runs another dtype.
    """
    return _Probe(model, settings_of(settings)).info()


class _Probe:
    """The checks of a server before a run: reachable, the configured model, its tokenizer, its dtype."""

    def __init__(self, model: str, s: dict[str, Any]) -> None:
        self.model, self.s = model, s
        self.url = s["url"].rstrip("/")
        self.root = self.url[: -len("/v1")] if self.url.endswith("/v1") else self.url  # vLLM's own endpoints
        self.http = httpx.Client(timeout=PROBE_TIMEOUT_S, headers=_auth(s))

    def _get(self, url: str, **kwargs: Any) -> Any:
        try:
            response = self.http.request("GET" if "json" not in kwargs else "POST", url, **kwargs)
        except (httpx.HTTPError, httpx.InvalidURL) as error:
            raise StateError(f"engine.url={self.url} is unreachable: {error or type(error).__name__}") from None
        if response.status_code != 200:
            text = response.text[:200].replace("\n", " ")
            raise StateError(f"engine.url={self.url}: {url} answered {response.status_code}: {text}")
        try:
            return response.json()
        except ValueError:
            raise StateError(f"engine.url={self.url}: {url} answered, but not as a vLLM server (no JSON)") from None

    def info(self) -> dict[str, Any]:
        """The server's identity (``INFO_KEYS`` and its max_model_len), once every check passed."""
        with self.http:
            try:
                models = self._get(f"{self.url}/models")["data"]
                served = self._served([m["id"] for m in models], {m.get("root") for m in models})
                card = next(m for m in models if m["id"] == served)
                version = self._get(f"{self.root}/version")["version"]
                self._same_tokenizer(served)
            except (KeyError, TypeError, IndexError) as error:  # a proxy, or a server of another kind
                raise StateError(
                    f"engine.url={self.url} answers, but not as a vLLM OpenAI-compatible server (no {error}): "
                    "engine=server needs vLLM's /v1/models, /version and /tokenize (docs/server.md)"
                ) from None
            dtype = self._dtype()
        return {
            "engine": NAME,
            "engine_version": version,
            "engine_dtype": dtype,
            "engine_served_max_model_len": card.get("max_model_len"),
            "engine_served_model": served,
        }

    def _served(self, names: list[str], roots: set[str | None]) -> str:
        """The served name to use: ``engine.served_model``, else the only model (one root: aliases of it)."""
        wanted = self.s["served_model"]
        if wanted is None and len(roots) == 1:
            return names[0]
        if wanted in names:
            return wanted
        raise StateError(
            f"engine.url={self.url} serves {names}: set engine.served_model to the one to use"
            if wanted is None
            else f"engine.url={self.url} serves {names}, not engine.served_model={wanted!r}"
        )

    def _same_tokenizer(self, served: str) -> None:
        """The server's tokens of :data:`PROBE` and its last vocabulary entries are the local tokenizer's."""
        tokenizer = load_tokenizer(self.model)
        local = tokenizer(PROBE, add_special_tokens=False)["input_ids"]
        body = {"model": served, "prompt": PROBE, "add_special_tokens": False}
        remote = self._get(f"{self.root}/tokenize", json=body)["tokens"]
        last = list(range(max(0, len(tokenizer) - 8), len(tokenizer)))  # a vocabulary of another size differs here
        text = self._get(f"{self.root}/detokenize", json={"model": served, "tokens": last[-1:]})["prompt"]
        differs = (
            f"{PROBE!r} is {remote[:12]}… there, {local[:12]}… here"
            if remote != local
            else f"token {last[-1]} is {text!r} there, {tokenizer.decode(last[-1:])!r} here"
            if text != tokenizer.decode(last[-1:])
            else ""
        )
        if differs:
            raise StateError(
                f"engine.url={self.url} serves {served!r}, whose tokenizer is not model.path={self.model!r}'s: "
                + differs
            )

    def _dtype(self) -> str:
        """The server's dtype from ``/server_info`` (served with VLLM_SERVER_DEV_MODE=1), else ``engine.dtype``."""
        configured, served = self.s["dtype"], None
        try:
            answer = self.http.get(f"{self.root}/server_info", params={"config_format": "json"}, timeout=INFO_TIMEOUT_S)
            reason = f"/server_info answered {answer.status_code}"
            if answer.status_code == 200:
                served = str(answer.json()["vllm_config"]["model_config"]["dtype"]).removeprefix("torch.")
        except (httpx.HTTPError, ValueError, KeyError, TypeError) as error:
            reason = f"/server_info: {type(error).__name__}"
        if served is None:
            print(
                f"warning: engine.url={self.url} does not report its dtype ({reason}; serve it with "
                "VLLM_SERVER_DEV_MODE=1, as scripts/serve.py does): the rows record "
                f"engine.dtype={configured}, unchecked",
                file=sys.stderr,
            )
            return configured
        if configured not in ("auto", served):
            raise StateError(f"engine.url={self.url} runs dtype {served}, not engine.dtype={configured}")
        return served


def _key(s: dict[str, Any]) -> str | None:
    """The server's key, from the variable ``engine.api_key_env`` names (read here, never stored)."""
    return os.environ.get(s["api_key_env"]) if s["api_key_env"] else None


def _auth(s: dict[str, Any]) -> dict[str, str]:
    key = _key(s)
    return {"Authorization": f"Bearer {key}"} if key else {}


@functools.lru_cache(maxsize=4)
def load_tokenizer(model: str) -> Any:
    """The tokenizer of a local model folder or hub id (tokenizer files only; loaded once per process)."""
    from transformers import AutoTokenizer  # heavy; only when a server run starts

    return AutoTokenizer.from_pretrained(model)


class ServerEngine:
    """The engine protocol over a vLLM server's ``/v1/completions``: a stage's requests in flight at once.

    Args:
        model: The model's local folder or hub id (its tokenizer renders the token ids sent).
        settings: The ``engine`` settings (url, api_key_env, served_model, max_concurrency,
            timeout_s, max_retries, dtype).
        cache_dir: Unused (the server keeps its own caches).

    Raises:
        StateError: when the checks of :func:`describe` fail.
    """

    def __init__(self, model: str, settings: dict[str, Any], cache_dir: str) -> None:
        del cache_dir
        self.s = settings_of(settings)
        self._info = _Probe(model, self.s).info()
        self.url, self.served = self.s["url"].rstrip("/"), self._info["engine_served_model"]
        self.tokenizer = load_tokenizer(model)
        self.counters = zero_counters()
        self._memo = scoring.TokenMemo()  # recent generations' token logprobs, which `score` reuses
        self._loop = asyncio.new_event_loop()  # one loop for the client's whole life (its connections live in it)
        self._client = self._loop.run_until_complete(self._connect())

    async def _connect(self) -> openai.AsyncOpenAI:
        return openai.AsyncOpenAI(
            base_url=self.url,
            api_key=_key(self.s) or "unused",  # a server started without --api-key ignores it
            timeout=self.s["timeout_s"],
            max_retries=self.s["max_retries"],
        )

    def _ids(self, texts: Sequence[str]) -> list[list[int]]:
        return [list(x) for x in self.tokenizer(list(texts), add_special_tokens=False)["input_ids"]]

    def generate(self, requests: Sequence[GenerationRequest], desc: str) -> list[Completion]:
        """Sends every request at once (up to ``max_concurrency`` in flight); completions in request order."""
        if not requests:
            return []
        ids = self._ids([r.prompt for r in requests])
        texts = sorted({t for r in requests for t in r.score})
        tokens = dict(zip(texts, self._ids(texts))) if texts else {}
        watch = scoring.watched_ids([r.score for r in requests], tokens, MAX_WATCHED)
        calls = [lambda x=x, r=r, w=w: self._complete(x, r, w) for x, r, w in zip(ids, requests, watch)]
        answers = [(usage, choices[0]) for usage, choices in self._all(calls, desc, self.s["max_concurrency"])]
        for x, w, (_, choice) in zip(ids, watch, answers):
            self._memo.remember(x, choice["token_ids"] or [], _steps(choice), bool(w))
        return [_completion(usage, choice) for usage, choice in answers]

    async def _complete(self, prompt: list[int], r: GenerationRequest, watch: list[int]) -> tuple[Any, dict]:
        return await self._request(prompt, r.max_tokens, watch, r.temperature, r.top_p, r.top_k, r.seed, r.stop)

    def score(self, requests: Sequence[ScoreRequest], desc: str) -> list[float]:
        """Teacher-forces each continuation with the one-token requests :func:`scoring.plan` gives, all in flight."""
        if not requests:
            return []
        prompts, conts = self._ids([r.prompt for r in requests]), self._ids([r.continuation for r in requests])
        known = [self._memo.known(prompt, cont) for prompt, cont in zip(prompts, conts)]
        targets = scoring.plan(prompts, conts, known)
        if not targets:
            return [total for _, total in known]
        groups = _groups(list(targets.items()))
        calls = [
            lambda g=g: self._request([list(p) for p, _ in g], 1, sorted(set().union(*(t for _, t in g))))
            for g in groups
        ]
        # prompts in flight as for generations: max_concurrency of them, in requests of SCORE_BATCH
        answers = self._all(calls, desc, max(1, self.s["max_concurrency"] // SCORE_BATCH))
        logprob = {}
        for prefix, choice in zip(targets, (choice for _, choices in answers for choice in choices)):
            steps = _steps(choice)
            if not steps or not targets[prefix] <= steps[0].keys():
                raise StateError(
                    f"engine.url={self.url} did not return the logprobs of the tokens asked (logprob_token_ids): "
                    f"its vLLM {self._info['engine_version']} may not support them (vLLM 0.32 does)"
                )
            logprob[prefix] = steps[0]
        return scoring.totals(prompts, conts, known, logprob)

    async def _request(
        self,
        prompt: list[int] | list[list[int]],
        max_tokens: int,
        watch: list[int],
        temperature: float = 0.0,
        top_p: float = 1.0,
        top_k: int = 0,
        seed: int | None = None,
        stop: tuple[str, ...] = (),
    ) -> tuple[Any, dict]:
        """A completion of token ids (or of several prompts'), with every sampling field the in-process engine sets.

        Returns:
            The usage (summed over the prompts) and the choices, one per prompt, in prompt order.
        """
        extra: dict[str, Any] = {
            **NEUTRAL,
            "top_k": top_k,
            "return_token_ids": True,
            "return_tokens_as_token_ids": True,
        }
        if watch:
            extra["logprob_token_ids"] = watch
        response = await self._client.completions.create(
            model=self.served,
            prompt=prompt,
            max_tokens=max_tokens,
            temperature=temperature,
            top_p=top_p,
            seed=seed,
            stop=list(stop) or None,
            # 0: the sampled token's own logprob, which `score` reuses; with watched ids vLLM wants their count
            logprobs=len(watch) if watch else 0,
            extra_body=extra,
        )
        expected = len(prompt) if prompt and isinstance(prompt[0], list) else 1
        if len(getattr(response, "choices", None) or []) != expected or getattr(response, "usage", None) is None:
            raise StateError(
                f"engine.url={self.url} answered {expected} prompt(s) without a choice each, or without usage: "
                "not a vLLM server"
            )
        return response.usage, [c.model_dump() for c in sorted(response.choices, key=lambda c: c.index)]

    def _all(self, calls: list[Callable[[], Awaitable[T]]], desc: str, limit: int) -> list[T]:
        """Runs every call, at most ``limit`` at once, in order; counts them as one engine call."""
        results = self._loop.run_until_complete(self._gather(calls, desc, limit))
        c = self.counters
        c["calls"] += 1
        c["requests"] += sum(len(choices) for _, choices in results)  # type: ignore[misc]
        for usage, _ in results:  # type: ignore[misc]
            details = getattr(usage, "prompt_tokens_details", None)
            c["prompt_tokens"] += usage.prompt_tokens
            c["cached_tokens"] += (
                (details.cached_tokens or 0) if details else 0
            )  # served with --enable-prompt-tokens-details
            c["generated_tokens"] += usage.completion_tokens
        return results

    async def _gather(self, calls: list[Callable[[], Awaitable[T]]], desc: str, limit: int) -> list[T]:
        gate = asyncio.Semaphore(limit)

        async def one(call: Callable[[], Awaitable[T]]) -> T:
            async with gate:
                return await call()

        tasks = [asyncio.ensure_future(one(call)) for call in calls]
        try:
            return list(await asyncio.gather(*tasks))
        except openai.APIStatusError as error:
            raise self._refused(error, desc) from None
        except openai.APIError as error:
            raise StateError(
                f"engine.url={self.url} stopped answering during {desc!r} ({type(error).__name__}: {error}) after "
                f"{self.s['max_retries']} retries (engine.max_retries): every finished chunk is stored; rerun to go on"
            ) from None
        finally:  # the first failure ends the stage: the rest are not sent
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

    def _refused(self, error: openai.APIStatusError, desc: str) -> StateError:
        """One line: the server's own message and the setting that changes it."""
        message = str(getattr(error, "message", error)).replace("\n", " ")
        if error.status_code >= 500:
            return StateError(f"engine.url={self.url} failed during {desc!r} ({error.status_code}): {message}")
        lowered = message.lower()
        fix = (
            "serve a longer context (scripts/serve.py --max-model-len) or lower sampling.max_tokens"
            if "context" in lowered or "max_model_len" in lowered or "too long" in lowered
            else "serve with a larger --max-logprobs (scripts/serve.py sets 128)"
            if "logprob" in lowered
            else "check the server's settings against this run's"
        )
        return StateError(
            f"engine.url={self.url} refused a request of {desc!r} ({error.status_code}): {message}; {fix}"
        )

    def close(self) -> None:
        """Closes the client's connections (the server keeps running); requests still pending are not sent."""
        if not self._loop.is_closed():
            self._loop.run_until_complete(self._shutdown())
            self._loop.close()

    async def _shutdown(self) -> None:
        # tasks left by an interrupted stage (Ctrl-C skips its own cancelling) are cancelled, not sent
        pending = [task for task in asyncio.all_tasks() if task is not asyncio.current_task()]
        for task in pending:
            task.cancel()
        await asyncio.gather(*pending, return_exceptions=True)
        await self._client.close()

    def info(self) -> dict[str, Any]:
        """The server's engine, vLLM version, dtype, context and served model name (see :func:`describe`)."""
        return dict(self._info)


def _groups(targets: list[tuple[scoring.Prefix, set[int]]]) -> list[list[tuple[scoring.Prefix, set[int]]]]:
    """Consecutive one-token prompts in groups of up to SCORE_BATCH that watch at most MAX_WATCHED ids in all.

    A group's prompts watch the union of their tokens: a token's logprob does not depend on which
    others are asked beside it.
    """
    groups: list[list[tuple[scoring.Prefix, set[int]]]] = []
    watched: set[int] = set()
    for prefix, ids in targets:
        if not groups or len(groups[-1]) == SCORE_BATCH or len(watched | ids) > MAX_WATCHED:
            groups.append([])
            watched = set()
        groups[-1].append((prefix, ids))
        watched |= ids
    return groups


def _steps(choice: dict[str, Any]) -> list[dict[int, float]]:
    """Per generated position, token id → logprob, from a choice returned with ``return_tokens_as_token_ids``."""
    logprobs = choice.get("logprobs") or {}
    steps = []
    for sampled, lp, top in zip(
        choice.get("token_ids") or [], logprobs.get("token_logprobs") or [], logprobs.get("top_logprobs") or []
    ):
        step = {int(key.rsplit(":", 1)[1]): value for key, value in (top or {}).items()}
        if lp is not None:
            step.setdefault(sampled, lp)
        step = {t: float("-inf") if v <= CLAMPED else v for t, v in step.items()}
        steps.append(step)
    return steps


def _completion(usage: Any, choice: dict[str, Any]) -> Completion:
    stop = choice.get("stop_reason")
    return Completion(
        text=choice["text"],
        finish_reason=choice.get("finish_reason") or "stop",
        prompt_tokens=usage.prompt_tokens,
        generated_tokens=usage.completion_tokens,
        cached_tokens=(usage.prompt_tokens_details.cached_tokens or 0) if usage.prompt_tokens_details else 0,
        stop_reason=stop if isinstance(stop, str) else None,
    )
