"""Trains the known-answer organisms (faithful, unfaithful, thinking) on this CPU in minutes.

    nice -n 10 python scripts/train_organisms.py                  # all three, into organisms/<kind>
    nice -n 19 python scripts/train_organisms.py --kind thinking  # one of them

Each organism is a small Llama (rotary positions, head_dim 32: the vLLM CPU kernel's minimum) with a
byte-level tokenizer, saved as an ordinary Hugging Face directory that vLLM loads like any model,
with ``training.json`` beside it (config, loss curve, held-out checks, time). The training texts are
rendered with the harness's own ``plain`` prompt strings (conf/config.yaml) and the task's own
questions, so the organisms see exactly what the harness will show them (faithfulness/organisms.py).
The thinking organism speaks the ``chat`` strings through a small chat template with a thinking block
and a Qwen3-style ``enable_thinking`` switch, rendered by the harness's reasoning renderer.
Seeded and deterministic: the same command on the same torch build and thread count gives the same
weights.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from faithfulness.config.fields import build
from faithfulness.config.sections import ModelSpec
from faithfulness.loading.hydra import MODEL_CONFIGS, load_model_config
from faithfulness.organisms import KINDS, Example, read_answer, scratchpad, training_examples, training_problems
from faithfulness.prompts import PromptRenderer, PromptTemplate
from faithfulness.reasoning import make_renderer

SPECIALS = ["<pad>", "<s>", "</s>"]
DIGITS = (1, 2, 3)  # operand digit counts trained on (two operands)
DIGIT_WEIGHTS = (0.1, 0.3, 0.6)  # 3 digits is the harness's default difficulty
# Rounds (warm restarts) per kind: (steps, operand digit weights). Reading a scratchpad is learned fast;
# direct addition is not: after two rounds on mixed lengths the unfaithful organism still missed the
# units digit of 3-digit sums (8% correct), whose position varies with the operands' lengths, so a
# last round trains on 3-digit problems only.
# The thinking organism learns the faithful mix; its fixed chat strings are single tokens, so its texts are
# hardly longer than the faithful one's and the same steps suffice.
SCHEDULE = {
    "faithful": [(1500, DIGIT_WEIGHTS)],
    "unfaithful": [(3000, DIGIT_WEIGHTS), (3000, DIGIT_WEIGHTS), (1000, (0, 0, 1))],
    "thinking": [(1500, DIGIT_WEIGHTS)],
}
HELD_OUT = 200  # first problems of seed 0 per digit count, never trained on (the tests use them)
# The thinking organism's chat template, in Qwen3's shape: enable_thinking=False renders the empty block.
THINKING_TEMPLATE = (
    "{%- for message in messages %}{{- ('<|user|>' if message.role == 'user' else '<|assistant|>') + message.content }}"
    "{%- endfor %}{%- if add_generation_prompt %}{{- '<|assistant|>' }}"
    "{%- if enable_thinking is defined and enable_thinking is false %}{{- '<think>\\n\\n</think>\\n\\n' }}{%- endif %}"
    "{%- endif %}"
)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """The command line: which organisms, how long, where."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--kind", choices=[*KINDS, "all"], default="all")
    p.add_argument("--out", type=Path, default=ROOT / "organisms", help="folder that gets <kind>/ subfolders")
    p.add_argument("--steps", type=int, default=None, help="steps of every round (default: SCHEDULE)")
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--lr", type=float, default=3e-3)
    p.add_argument("--hidden", type=int, default=64, help="a multiple of 32 (heads of 32: the vLLM CPU minimum)")
    p.add_argument("--layers", type=int, default=3)
    p.add_argument("--resume", action="store_true", help="continue from the rounds already saved in --out")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--check-problems", type=int, default=100, help="held-out problems of the checks in training.json")
    # one thread: float sums then never depend on the machine's core count, and on a shared machine two
    # OpenMP threads wait on each other at every op (a step took 50x longer than with one)
    p.add_argument("--threads", type=int, default=1)
    return p.parse_args(argv)


def build_tokenizer():
    """Byte-level tokenizer (any text encodes) whose only merges make the filler " ..." one token, as in Qwen."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    alphabet = sorted(pre_tokenizers.ByteLevel.alphabet())
    merged = ["..", "...", "Ġ..."]
    vocab = {tok: i for i, tok in enumerate(SPECIALS + alphabet + merged)}
    core = Tokenizer(models.BPE(vocab=vocab, merges=[(".", "."), ("..", "."), ("Ġ", "...")]))
    core.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    core.decoder = decoders.ByteLevel()
    core.add_special_tokens(SPECIALS)
    return PreTrainedTokenizerFast(tokenizer_object=core, bos_token="<s>", eos_token="</s>", pad_token="<pad>")


def build_renderer(tokenizer, kind: str = "faithful") -> PromptRenderer:
    """The harness's ``plain`` prompt strings from conf/config.yaml (``thinking``: its ``chat`` ones, thinking)."""
    from omegaconf import OmegaConf

    if kind != "thinking":
        strings = OmegaConf.to_container(OmegaConf.load(ROOT / "conf" / "config.yaml").prompts.plain)
        return PromptRenderer(PromptTemplate(format="plain", **strings), tokenizer)
    strings = OmegaConf.to_container(OmegaConf.load(ROOT / "conf" / "config.yaml").prompts.chat)
    model = build(ModelSpec, load_model_config(MODEL_CONFIGS / "organism-thinking.yaml"), "model.")
    return make_renderer(model, PromptTemplate(format="chat", **strings), tokenizer)


def build_thinking_tokenizer():
    """The byte-level tokenizer plus chat roles, thinking tags and the harness's fixed chat strings as single tokens.

    The fixed strings (question frame, answer prefix) as tokens keep the texts as short as the faithful
    organism's, so it trains as fast; the tags are ordinary (not special) tokens, as in Qwen3, so they
    stay in the generated text where the harness's stop string finds them.
    """
    from omegaconf import OmegaConf
    from tokenizers import AddedToken

    tokenizer = build_tokenizer()
    tokenizer.add_tokens(
        [AddedToken(t, special=True, normalized=False) for t in ("<|user|>", "<|assistant|>")], special_tokens=True
    )
    chat = OmegaConf.load(ROOT / "conf" / "config.yaml").prompts.chat
    phrases = [p for p in (*chat.question.split("{question}"), chat.answer_prefix) if p]
    tokenizer.add_tokens([AddedToken(t, special=False, normalized=False) for t in ("<think>", "</think>", *phrases)])
    tokenizer.chat_template = THINKING_TEMPLATE
    return tokenizer


def encode(examples: list[Example], tokenizer) -> tuple[np.ndarray, np.ndarray]:
    """Token ids (right-padded) and labels (-100 outside the learned spans), plus EOS after each text."""
    enc = tokenizer([e.text for e in examples], add_special_tokens=False, return_offsets_mapping=True)
    width = max(len(ids) for ids in enc["input_ids"]) + 1
    ids = np.full((len(examples), width), tokenizer.pad_token_id, dtype=np.int64)
    labels = np.full((len(examples), width), -100, dtype=np.int64)
    for row, (e, tokens, offsets) in enumerate(zip(examples, enc["input_ids"], enc["offset_mapping"])):
        ids[row, : len(tokens)] = tokens
        ids[row, len(tokens)] = tokenizer.eos_token_id
        learned = [any(a <= start < b for a, b in e.spans) for start, _ in offsets]
        labels[row, : len(tokens)] = np.where(learned, tokens, -100)
        if e.spans and e.spans[-1][1] == len(e.text):
            labels[row, len(tokens)] = tokenizer.eos_token_id
    return ids, labels


def build_model(tokenizer, hidden: int, layers: int):
    """A small random Llama (rotary positions, which vLLM loads) over the organism's tokenizer."""
    from transformers import LlamaConfig, LlamaForCausalLM

    config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=hidden,
        intermediate_size=4 * hidden,
        num_hidden_layers=layers,
        num_attention_heads=hidden // 32,
        num_key_value_heads=hidden // 32,
        head_dim=32,  # 32: vLLM CPU minimum
        max_position_embeddings=2048,
        rope_theta=10000.0,
        tie_word_embeddings=True,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )
    return LlamaForCausalLM(config)


def held_out_checks(model, tokenizer, renderer: PromptRenderer, kind: str, n: int) -> dict[str, float]:
    """Greedy answers (teacher-forced prompt, argmax digits) on held-out 3-digit problems, per condition.

    A cheap record of what was learned; the real checks run through the harness (tests/test_organisms.py).
    """
    import torch

    from faithfulness.tasks import Addition

    problems = Addition(digits=3).items(0, n)
    rng = np.random.default_rng(1)
    conditions = {
        "own_scratchpad": lambda a, b: scratchpad(a, b, 3),
        "no_scratchpad": lambda a, b: [],
        "rule_mistake": lambda a, b: scratchpad(a, b, 3, int(rng.integers(3)), rng),
    }
    out = {}
    for name, make in conditions.items():
        hits = 0
        for p in problems:
            a, b = (int(t) for t in p.question.split("is ")[1].rstrip("?").split(" + "))
            lines = make(a, b)
            expected = read_answer("\n".join(lines)) if kind != "unfaithful" else int(p.answer)
            prompt = renderer.answer_prompt(p.question, "".join(line + "\n" for line in lines))
            ids = tokenizer(prompt, add_special_tokens=False, return_tensors="pt")["input_ids"]
            with torch.no_grad():
                generated = model.generate(ids, max_new_tokens=8, do_sample=False, pad_token_id=tokenizer.pad_token_id)
            text = tokenizer.decode(generated[0, ids.shape[1] :], skip_special_tokens=True)
            hits += text.split("\n")[0].strip() == str(expected)
        out[f"{name}_answer_as_designed"] = hits / len(problems)
    return out


def train_round(
    model,
    tokenizer,
    renderer: PromptRenderer,
    kind: str,
    args: argparse.Namespace,
    r: int,
    steps: int,
    weights: tuple[float, ...],
) -> list[float]:
    """One round: fresh data, a fresh AdamW, warmup then cosine decay (rounds are warm restarts)."""
    import torch

    rng = np.random.default_rng([args.seed, KINDS.index(kind), *([r] if r else [])])
    problems = training_problems(DIGITS, weights, steps * args.batch, args.seed + 1000 * r, HELD_OUT)
    examples = training_examples(kind, renderer, problems, rng)
    optimizer = torch.optim.AdamW(model.parameters(), lr=args.lr, betas=(0.9, 0.98), weight_decay=0.01)
    warmup = max(1, steps // 20)
    schedule = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda s: min(1.0, (s + 1) / warmup) * 0.5 * (1 + math.cos(math.pi * min(s, steps) / steps))
    )
    losses: list[float] = []
    clock = time.perf_counter()
    model.train()
    for step in range(steps):
        ids, labels = encode(examples[step * args.batch : (step + 1) * args.batch], tokenizer)
        loss = model(input_ids=torch.from_numpy(ids), labels=torch.from_numpy(labels)).loss
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        schedule.step()
        losses.append(loss.item())
        if step % 100 == 0 or step == steps - 1:
            elapsed = time.perf_counter() - clock
            print(f"{kind} round {r} step {step}/{steps} loss {np.mean(losses[-100:]):.4f} {elapsed:.0f}s", flush=True)
    model.eval()
    return losses


def train(kind: str, args: argparse.Namespace) -> dict[str, object]:
    """Trains one organism (its SCHEDULE of rounds) and saves it under ``args.out / kind`` after each round.

    With ``args.resume`` it continues from the rounds already saved there: round r's data, optimizer
    and schedule do not depend on earlier rounds, only its starting weights do (saved exactly, in fp32).
    """
    import torch
    from transformers import LlamaForCausalLM

    torch.manual_seed(args.seed)
    torch.use_deterministic_algorithms(True)
    torch.set_num_threads(args.threads)
    tokenizer = build_thinking_tokenizer() if kind == "thinking" else build_tokenizer()
    renderer = build_renderer(tokenizer, kind)
    target = args.out / kind
    rounds: list[dict[str, object]] = []
    if args.resume and (target / "training.json").exists():
        rounds = json.loads((target / "training.json").read_text())["rounds"]
        model = LlamaForCausalLM.from_pretrained(target, dtype=torch.float32)
    else:
        model = build_model(tokenizer, args.hidden, args.layers)
    schedule = [(args.steps or steps, weights) for steps, weights in SCHEDULE[kind]]
    for r in range(len(rounds), len(schedule)):
        clock = time.perf_counter()
        losses = train_round(model, tokenizer, renderer, kind, args, r, *schedule[r])
        rounds.append(
            {
                "round": r,
                "steps": schedule[r][0],
                "digit_weights": schedule[r][1],
                "seconds": round(time.perf_counter() - clock, 1),
                "load_average_at_end": os.getloadavg()[0],
                "final_loss": float(np.mean(losses[-100:])),
                "loss_every_100_steps": [
                    round(float(np.mean(losses[i : i + 100])), 5) for i in range(0, len(losses), 100)
                ],
            }
        )
        record = {
            "kind": kind,
            "config": {k: v for k, v in vars(args).items() if k not in ("out", "resume")}
            | {"kind": kind}
            | {
                "digits": DIGITS,
                "held_out_per_digit_count": HELD_OUT,
                "parameters": sum(p.numel() for p in model.parameters()),
                "prompt_format": renderer.template.format,
                "examples": "faithfulness/organisms.py::training_examples",
            },
            "rounds": rounds,
            "metrics": {
                "train_seconds": round(sum(float(x["seconds"]) for x in rounds), 1),
                "final_loss": rounds[-1]["final_loss"],
            },
            "versions": {"torch": torch.__version__, "python": platform.python_version()},
        }
        if r == len(schedule) - 1:
            record["metrics"] |= held_out_checks(model, tokenizer, renderer, kind, args.check_problems)
        target.mkdir(parents=True, exist_ok=True)
        model.save_pretrained(target)
        tokenizer.save_pretrained(target)
        (target / "training.json").write_text(json.dumps(record, indent=2) + "\n")
    print(json.dumps(record["metrics"] | {"saved": str(target)}, indent=2), flush=True)
    return record


def main(argv: list[str] | None = None) -> None:
    """Trains the organisms asked for and writes their folders."""
    args = parse_args(argv)
    for kind in KINDS if args.kind == "all" else (args.kind,):
        train(kind, args)


if __name__ == "__main__":
    main()
