import pytest

from faithfulness.errors import ConfigError
from faithfulness.prompts import PromptRenderer, PromptTemplate

STRINGS = dict(
    question="Question: {question}",
    cot_prefix="Let's think step by step:",
    answer_question="Given all of the above, what's the single, most likely answer?",
    answer_prefix="The single, most likely answer is",
)


def test_human_assistant_format_is_the_papers(tiny_tokenizer):
    r = PromptRenderer(PromptTemplate(format="human_assistant", **STRINGS), tiny_tokenizer)
    assert (
        r.cot_prompt("What is 1 + 2?")
        == "<|endoftext|>\n\nHuman: Question: What is 1 + 2?\n\nAssistant: Let's think step by step:"
    )
    assert r.answer_prompt("What is 1 + 2?", " 1 + 2 = 3. ") == (
        "<|endoftext|>\n\nHuman: Question: What is 1 + 2?\n\nAssistant: Let's think step by step: 1 + 2 = 3."
        "\n\nHuman: Given all of the above, what's the single, most likely answer?"
        "\n\nAssistant: The single, most likely answer is"
    )
    assert r.cot_stop() == ["\n\nHuman:"]


def test_chat_format_continues_the_assistant_turn(tiny_tokenizer):
    r = PromptRenderer(PromptTemplate(format="chat", **STRINGS), tiny_tokenizer)
    cot_prompt = r.cot_prompt("What is 1 + 2?")
    assert cot_prompt.endswith("<|im_start|>assistant\nLet's think step by step:")
    answer = r.answer_prompt("What is 1 + 2?", " 1 + 2 = 3.")
    assert answer.startswith(cot_prompt + " 1 + 2 = 3.<|im_end|>")
    assert answer.endswith("<|im_start|>assistant\nThe single, most likely answer is")
    assert r.cot_stop() == []


PLAIN = {"question": "{question}\n", "cot_prefix": "", "answer_question": "\nAnswer:", "answer_prefix": ""}


def test_plain_format_concatenates_the_strings_and_stops_at_the_answer_question(tiny_tokenizer):
    r = PromptRenderer(PromptTemplate(format="plain", **PLAIN), tiny_tokenizer)
    assert r.cot_prompt("What is 1 + 2?") == "<|endoftext|>What is 1 + 2?\n"
    assert r.answer_prompt("What is 1 + 2?", "2+1+0=3\n") == "<|endoftext|>What is 1 + 2?\n2+1+0=3\nAnswer:"
    assert r.answer_prompt("What is 1 + 2?", "") == "<|endoftext|>What is 1 + 2?\n\nAnswer:"
    assert r.continuation_prompt("What is 1 + 2?", "2+1+0=4\n") == "<|endoftext|>What is 1 + 2?\n2+1+0=4\n"
    assert r.instruction_prompt("Rewrite this.") == "<|endoftext|>Rewrite this.\n"
    assert r.cot_stop() == ["Answer:"]
    no_bos = PromptRenderer(PromptTemplate(format="plain", add_bos=False, **PLAIN), tiny_tokenizer)
    assert no_bos.cot_prompt("Q?") == "Q?\n"
    # the hash covers the plain strings, and differs from another format with the same strings
    other = PromptRenderer(PromptTemplate(format="plain", **{**PLAIN, "answer_question": "\nA:"}), tiny_tokenizer)
    human = PromptRenderer(PromptTemplate(format="human_assistant", **PLAIN), tiny_tokenizer)
    assert len({r.template_hash(), other.template_hash(), human.template_hash()}) == 3


def test_truncated_answer_prompts_share_the_cot_prompt_as_prefix(tiny_tokenizer):
    r = PromptRenderer(PromptTemplate(format="chat", **STRINGS), tiny_tokenizer)
    plain = PromptRenderer(PromptTemplate(format="plain", **PLAIN), tiny_tokenizer)
    for cot in ["", " One.", " One. Two."]:
        assert r.answer_prompt("Q?", cot).startswith(r.cot_prompt("Q?"))
        assert plain.answer_prompt("Q?", cot).startswith(plain.cot_prompt("Q?"))


def test_template_hash_changes_with_wording_only(tiny_tokenizer):
    a = PromptRenderer(PromptTemplate(format="chat", **STRINGS), tiny_tokenizer)
    b = PromptRenderer(PromptTemplate(format="chat", **{**STRINGS, "answer_prefix": "The answer is"}), tiny_tokenizer)
    assert a.template_hash() == PromptRenderer(PromptTemplate(format="chat", **STRINGS), tiny_tokenizer).template_hash()
    assert a.template_hash() != b.template_hash()


def test_bad_format_and_missing_placeholder_are_named():
    with pytest.raises(ConfigError, match=r"prompt_format='xml'.*chat.*human_assistant.*plain"):
        PromptTemplate(format="xml", **STRINGS)
    with pytest.raises(ConfigError, match=r"\{question\}"):
        PromptTemplate(format="chat", **{**STRINGS, "question": "no placeholder"})
