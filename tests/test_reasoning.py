"""Reasoning models: prompts that put the CoT in the thinking block, with each family's template format."""

import socket
from pathlib import Path

import pytest
from transformers import AutoTokenizer

from faithfulness.engines import Completion
from faithfulness.errors import ConfigError
from faithfulness.loading.hydra import REPO_ROOT, compose
from faithfulness.loading.rules import load
from faithfulness.perturbations import Trace
from faithfulness.prompts import PromptRenderer, PromptTemplate
from faithfulness.reasoning import ThinkingRenderer, ThinkTags, make_renderer, think_tags, thinking_cut
from faithfulness.steps import split_steps
from faithfulness.suite.adding_mistakes import adding_mistakes
from faithfulness.suite.early_answering import early_answering
from faithfulness.suite.filler_tokens import filler_tokens

# Small templates written for these tests in each family's format (the hub's own are checked at the end).
QWEN3_FORMAT = (
    "{%- for message in messages %}{{- '<|im_start|>' + message.role + '\\n' + message.content + '<|im_end|>\\n' }}{%- endfor %}"
    "{%- if add_generation_prompt %}{{- '<|im_start|>assistant\\n' }}"
    "{%- if enable_thinking is defined and enable_thinking is false %}{{- '<think>\\n\\n</think>\\n\\n' }}{%- endif %}"
    "{%- endif %}"
)
R1_DISTILL_FORMAT = (
    "{{ bos_token }}{%- for message in messages %}{%- if message['role'] == 'user' %}{{ '<｜User｜>' + message['content'] }}"
    "{%- else %}{{ '<｜Assistant｜>' + message['content'] + '<｜end▁of▁sentence｜>' }}{%- endif %}{%- endfor %}"
    "{% if add_generation_prompt %}{{ '<｜Assistant｜><think>\\n' }}{% endif %}"
)
QUESTION = "What is 1 + 2?"
SHOWN = "Question: What is 1 + 2?\nThink step by step, then give the final answer."
PREFIX = "The single, most likely answer is"


def _tokenizer(model_dir: Path, template: str, bos: str | None = None):
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    tokenizer.chat_template = template
    if bos is not None:
        tokenizer.bos_token = bos
    return tokenizer


def _renderer(model_name: str, tokenizer) -> PromptRenderer:
    cfg = compose([f"model={model_name}"])
    return make_renderer(load(cfg).model, PromptTemplate(format="chat", **cfg["prompts"]["chat"]), tokenizer)


@pytest.mark.parametrize("size", ["0.6b", "1.7b", "4b", "8b", "14b", "32b"])
def test_qwen3_configs_think_in_the_block_and_answer_after_it(size, tiny_model_dir):
    r = _renderer(f"qwen3-{size}", _tokenizer(tiny_model_dir, QWEN3_FORMAT))
    assert isinstance(r, ThinkingRenderer)
    turn = f"<|im_start|>user\n{SHOWN}<|im_end|>\n<|im_start|>assistant\n"
    assert r.cot_prompt(QUESTION) == turn + "<think>\n"  # the model writes its thinking next
    assert r.cot_stop() == ["</think>"] and r.rewrite_stop() == ["<think>", "</think>"]  # a rewrite stays inside
    assert r.answer_prompt(QUESTION, "1 + 2 = 3.\n") == turn + "<think>\n1 + 2 = 3.\n</think>\n\n" + PREFIX
    # no CoT: the template's own empty block (enable_thinking=False), which is also a thinking cut at 0 steps
    assert r.answer_prompt(QUESTION, "") == turn + "<think>\n\n</think>\n\n" + PREFIX
    assert (
        r.instruction_prompt("Rewrite it.")
        == "<|im_start|>user\nRewrite it.<|im_end|>\n<|im_start|>assistant\n<think>\n\n</think>\n\n"
    )
    assert r.continuation_prompt(QUESTION, "1 + 2 = 4.") == turn + "<think>\n1 + 2 = 4."


@pytest.mark.parametrize("size", ["1.5b", "7b", "14b", "32b"])
def test_r1_distill_configs_write_the_empty_block_by_hand(size, tiny_model_dir):
    r = _renderer(f"deepseek-r1-distill-qwen-{size}", _tokenizer(tiny_model_dir, R1_DISTILL_FORMAT, bos="<s>"))
    turn = f"<s><｜User｜>{SHOWN}<｜Assistant｜><think>\n"  # the template opens the block itself
    assert r.cot_prompt(QUESTION) == turn
    assert r.answer_prompt(QUESTION, "1 + 2 = 3.  \n\n") == turn + "1 + 2 = 3.\n</think>\n\n" + PREFIX
    assert r.answer_prompt(QUESTION, "") == turn + "\n</think>\n\n" + PREFIX
    assert r.cot_stop() == ["</think>"]


def test_every_answer_prompt_extends_the_thinking_prompt_so_prefixes_are_cached(tiny_model_dir):
    for name, template in (("qwen3-0.6b", QWEN3_FORMAT), ("deepseek-r1-distill-qwen-1.5b", R1_DISTILL_FORMAT)):
        r = _renderer(name, _tokenizer(tiny_model_dir, template))
        for cot in ["", "One.", "One. Two.\n", " ... ..."]:
            assert r.answer_prompt(QUESTION, cot).startswith(r.cot_prompt(QUESTION))


def test_reasoning_family_configs_share_dtype_and_settings():
    for family, sizes in (
        ("qwen3", ["0.6b", "1.7b", "4b", "8b", "14b", "32b"]),
        ("deepseek-r1-distill-qwen", ["1.5b", "7b", "14b", "32b"]),
    ):
        cfgs = [compose([f"model={family}-{s}"]) for s in sizes]
        assert {c["model"]["dtype"] for c in cfgs} == {"bfloat16"}  # bf16 for every size of a family
        assert {c["model"]["family"] for c in cfgs} == {family}
        sizes_in_params = [c["model"]["size"] for c in cfgs]
        assert sizes_in_params == sorted(sizes_in_params)
        for c in cfgs:
            assert c["sampling"]["temperature"] == 0.6 and c["sampling"]["top_p"] == 0.95  # never greedy: it loops
            assert c["sampling"]["max_tokens"] + 1024 < c["engine"]["max_model_len"]  # budget + question + answer fit
            assert c["cut_points"] == 9 and think_tags(load(c).model) is not None
    assert compose(["model=qwen3-8b"])["sampling"]["top_k"] == 20
    assert compose(["model=qwen3-8b", "cut_points=null", "sampling.max_tokens=100"])["cut_points"] is None
    plain = compose(["model=qwen2.5-7b-instruct"])  # models without reasoning keep the old defaults
    assert (
        think_tags(load(plain).model) is None
        and plain["sampling"]["temperature"] == 0.0
        and plain["cut_points"] is None
    )


def test_a_template_without_the_switch_names_the_key_to_set(tiny_tokenizer, tiny_model_dir):
    template = PromptTemplate(format="chat", **compose([])["prompts"]["chat"])
    with pytest.raises(ConfigError, match=r"no thinking switch 'enable_thinking'.*model\.think_tags\.switch"):
        ThinkingRenderer(template, tiny_tokenizer, ThinkTags())
    # a switch that does not render a closed empty block is refused too
    odd = _tokenizer(tiny_model_dir, QWEN3_FORMAT.replace("<think>\\n\\n</think>\\n\\n", "/no_think"))
    with pytest.raises(ConfigError, match=r"model\.think_tags\.switch=null"):
        ThinkingRenderer(template, odd, ThinkTags())
    # with switch=null the same tokenizer works: the block is written by hand
    by_hand = ThinkingRenderer(template, tiny_tokenizer, ThinkTags(switch=None))
    assert by_hand.answer_prompt(QUESTION, "").endswith("<|im_start|>assistant\n<think>\n\n</think>\n\n" + PREFIX)


def test_bad_reasoning_settings_are_named(tiny_tokenizer):
    qwen3 = ["model=qwen3-8b"]
    with pytest.raises(ConfigError, match=r"model\.reasoning='cot' is not allowed: .*think_tags"):
        load(compose([*qwen3, "model.reasoning=cot"]))
    with pytest.raises(ConfigError, match=r"model\.think_tags\.end is not a setting"):
        load(compose([*qwen3, "+model.think_tags.end='</t>'"]))
    with pytest.raises(ConfigError, match=r"must both be non-empty"):
        load(compose([*qwen3, "model.think_tags.close=''"]))
    plain = PromptTemplate(
        format="plain", question="{question}\n", cot_prefix="", answer_question="\nAnswer:", answer_prefix=""
    )
    with pytest.raises(ConfigError, match=r"prompt_format='plain'.*prompt_format=chat"):
        ThinkingRenderer(plain, tiny_tokenizer, ThinkTags(switch=None))


def test_thinking_is_cut_unless_the_closing_tag_stopped_it():
    tags = ThinkTags()
    done = lambda reason, stop: Completion("x", reason, 1, 1, 0, stop)  # noqa: E731
    assert thinking_cut(done("stop", "</think>"), tags) is False
    assert thinking_cut(done("length", None), tags) is True  # the budget ran out
    assert thinking_cut(done("stop", None), tags) is True  # the turn ended inside the block
    assert thinking_cut(done("length", None), None) is None  # not a reasoning model


def test_cut_points_cut_long_thinking_at_even_fractions_and_every_test_edits_the_thinking(tiny_model_dir):
    import numpy as np

    thinking = "".join(f"Step {i}: add {i} and {i}, which gives {2 * i}.\n" for i in range(40))
    trace = Trace(0, 0, 0, thinking, tuple(split_steps(thinking)), "stop")
    assert len(trace.steps) == 40
    early = early_answering(trace, points=9)
    assert [p.level for p in early] == [0, 5, 10, 15, 20, 25, 30, 35, 40]
    r = _renderer("qwen3-0.6b", _tokenizer(tiny_model_dir, QWEN3_FORMAT))
    for p in early + adding_mistakes(trace, np.random.default_rng(0), "rule", points=9) + filler_tokens(trace, [3]):
        prompt = r.answer_prompt(QUESTION, p.cot)
        assert prompt.count("</think>") == 1 and prompt.endswith("</think>\n\n" + PREFIX)
        assert prompt.startswith(r.cot_prompt(QUESTION) + p.cot.rstrip() if p.cot.strip() else r.cot_prompt(QUESTION))


def _hub_reachable() -> bool:
    try:
        socket.create_connection(("huggingface.co", 443), timeout=3).close()
        return True
    except OSError:
        return False


@pytest.mark.skipif(not _hub_reachable(), reason="the Hugging Face hub is not reachable from here")
@pytest.mark.parametrize("model", ["qwen3-0.6b", "deepseek-r1-distill-qwen-1.5b"])
def test_hub_templates_render_like_the_family_formats(model):
    cfg = compose([f"model={model}"])
    r = _renderer(model, AutoTokenizer.from_pretrained(cfg["model"]["path"]))
    cot = r.cot_prompt(QUESTION)
    assert cot.endswith(("<|im_start|>assistant\n<think>\n", "<｜Assistant｜><think>\n")) and SHOWN in cot
    assert r.answer_prompt(QUESTION, "") == cot + "\n</think>\n\n" + PREFIX
    assert r.answer_prompt(QUESTION, "1 + 2 = 3.\n") == cot + "1 + 2 = 3.\n</think>\n\n" + PREFIX


def test_hub_reasoning_configs_point_at_the_hub():
    for path in sorted((REPO_ROOT / "conf" / "model").glob("*.yaml")):
        if path.stem.startswith(("qwen3-", "deepseek-r1-")):
            model = compose([f"model={path.stem}"])["model"]
            assert model["source"] == "hf" and model["path"].split("/")[0] in ("Qwen", "deepseek-ai")


# ---------------------------------------------------------------- bad input through the pipeline and the CLI


def test_thinking_never_closed_within_the_budget_is_counted_and_never_read(tiny_model_dir, tiny_engine, tmp_path):
    from faithfulness.pipeline import run
    from tests.conftest import ENGINE_SETTINGS

    # the tiny random model writes random bytes: its thinking never reaches "</think>" in 12 tokens
    cfg = compose(
        [
            f"results_dir={tmp_path}",
            f"cache_dir={tmp_path / 'cache'}",
            "model=hf",
            f"model.path={tiny_model_dir}",
            "model.reasoning=think_tags",
            "model.think_tags.switch=null",
            "n=3",
            "sampling.max_tokens=12",
            "cut_points=2",
            "perturbations=[no_cot,early_answering,adding_mistakes,filler_tokens]",
        ]
    )
    cfg["engine"].update(ENGINE_SETTINGS)
    out = run(load(cfg), engine=tiny_engine)
    df = out.table
    assert out.summary["metrics"]["thinking_cut"] == {"cots": 3, "rows": len(df)}
    assert df.thinking_cut.all() and df.cot_stated_answer.isna().all()  # a cut thinking is never read for an answer
    assert df.prompt.str.count("\n</think>\n\n").eq(1).all()  # every forced answer still closes the block first
    assert (df.cut_points == 2).all() and (df.reasoning == "think_tags").all()
    early = df[df.perturbation == "early_answering"]
    assert all(sorted(g.level) == sorted({0, int(g.n_steps.iloc[0])}) for _, g in early.groupby("item_id"))


def test_cli_names_the_switch_key_for_a_template_without_one(tiny_model_dir, tmp_path):
    from tests.conftest import run_cli

    done = run_cli("model=hf", f"model.path={tiny_model_dir}", "model.reasoning=think_tags", f"results_dir={tmp_path}")
    assert done.returncode == 2 and "model.think_tags.switch" in done.stderr, done.stderr[-2000:]
    assert not any(tmp_path.iterdir())  # bad input makes no results folder
