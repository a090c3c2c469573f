"""Shared fixtures: a tiny random model built from a config (no download) and one engine per session."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
CHAT_TEMPLATE = (
    "{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)


def build_tiny_model(path: Path) -> Path:
    """A 2-layer random Llama with a byte-level tokenizer and a chat template (head_dim 32: the CPU minimum)."""
    import torch
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    specials = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
    alphabet = pre_tokenizers.ByteLevel.alphabet()
    vocab = {tok: i for i, tok in enumerate(specials + sorted(alphabet))}
    core = Tokenizer(models.BPE(vocab=vocab, merges=[]))
    core.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    core.decoder = decoders.ByteLevel()
    core.add_special_tokens(specials)
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=core, bos_token="<|endoftext|>", eos_token="<|im_end|>", pad_token="<|endoftext|>"
    )
    tokenizer.chat_template = CHAT_TEMPLATE
    config = LlamaConfig(
        vocab_size=len(vocab),
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=2,
        num_key_value_heads=2,
        head_dim=32,
        max_position_embeddings=2048,
        bos_token_id=0,
        eos_token_id=vocab["<|im_end|>"],
        pad_token_id=0,
        tie_word_embeddings=True,
    )
    torch.manual_seed(0)
    LlamaForCausalLM(config).save_pretrained(path)
    tokenizer.save_pretrained(path)
    return path


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_tiny_model(tmp_path_factory.mktemp("tiny-model"))


@pytest.fixture(scope="session")
def tiny_tokenizer(tiny_model_dir: Path):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(tiny_model_dir)


@pytest.fixture(scope="session")
def smollm2_tokenizer():
    """The real SmolLM2 tokenizer, converted from its packaged GGUF (cached after the first run)."""
    from transformers import AutoTokenizer

    from faithfulness.config.fields import build
    from faithfulness.config.sections import ModelSpec
    from faithfulness.loading.hydra import MODEL_CONFIGS, load_model_config
    from faithfulness.models import resolve_model
    from faithfulness.paths import default_cache_dir

    model = build(ModelSpec, load_model_config(MODEL_CONFIGS / "smollm2-135m.yaml"), "model.")
    return AutoTokenizer.from_pretrained(resolve_model(model, default_cache_dir()).path)


ENGINE_SETTINGS = {"dtype": "float32", "enforce_eager": True, "max_model_len": 1024, "kv_cache_gib": 1, "seed": 0}


@pytest.fixture(scope="session")
def tiny_engine(tiny_model_dir: Path, tmp_path_factory: pytest.TempPathFactory):
    """The real vLLM engine on the tiny model, started once per test session."""
    from faithfulness.engines import load_engine

    engine = load_engine(str(tiny_model_dir), ENGINE_SETTINGS, str(tmp_path_factory.mktemp("vllm-cache")))
    yield engine
    engine.close()


def run_in_group(
    cmd: list[str], env: dict[str, str] | None = None, timeout: float = 900
) -> subprocess.CompletedProcess:
    """Runs ``cmd`` from the repo root in its own process group, killed whole on timeout.

    vLLM's engine processes outlive a killed parent and would otherwise keep both cores busy for the
    rest of the session. The result carries ``pgid`` (its own session: the group id is its pid).
    """
    with subprocess.Popen(
        cmd,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=ROOT,
        env=env if env is not None else dict(os.environ),
        start_new_session=True,
    ) as proc:
        try:
            stdout, stderr = proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            raise
    done = subprocess.CompletedProcess(cmd, proc.returncode, stdout, stderr)
    done.pgid = proc.pid  # type: ignore[attr-defined]
    return done


def run_cli(*overrides: str, env: dict[str, str] | None = None, timeout: float = 900) -> subprocess.CompletedProcess:
    """Runs `python run.py OVERRIDES...` as a user would (see :func:`run_in_group`).

    The test process's own engines (``tiny_engine``) set vLLM's log level in its environment; a user's
    shell has none, so it is not passed on (a run chooses its own level, see faithfulness/console.py).
    """
    inherited = {k: v for k, v in os.environ.items() if k != "VLLM_LOGGING_LEVEL"}
    return run_in_group([sys.executable, str(ROOT / "run.py"), *overrides], {**inherited, **(env or {})}, timeout)


def alive_in_group(pgid: int) -> list[int]:
    """Pids of live (non-zombie) processes in a process group."""
    alive = []
    for entry in filter(str.isdigit, os.listdir("/proc")):
        try:
            with open(f"/proc/{entry}/stat") as handle:
                fields = handle.read().rsplit(")", 1)[1].split()
        except (FileNotFoundError, ProcessLookupError):  # ended meanwhile
            continue
        if int(fields[2]) == pgid and fields[0] != "Z":
            alive.append(int(entry))
    return alive
