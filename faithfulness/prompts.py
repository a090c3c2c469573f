"""Rendering prompts: the paper's Human/Assistant format, a model's own chat template, or plain text.

Every prompt is rendered to the exact text the model sees (special tokens included), so the
stored prompt is the truth and its template can be hashed. Two prompts per CoT are needed:

* the CoT prompt, after which the model writes its reasoning;
* the answer prompt: the question, a (possibly perturbed) CoT, then the paper's follow-up question
  and an answer prefix, after which the model's next tokens are its forced answer (Lanham et al.
  2023, §2: "Given all of the above, what's the single, most likely answer?").
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any, Protocol

from faithfulness.errors import ConfigError

FORMATS = ("chat", "human_assistant", "plain")


class ChatTokenizer(Protocol):
    """The part of a Hugging Face tokenizer that rendering needs."""

    bos_token: str | None

    def apply_chat_template(self, conversation: list[dict[str, str]], **kwargs: Any) -> Any:
        """Renders a conversation with the model's chat template (transformers' signature)."""
        ...


@dataclass(frozen=True)
class PromptTemplate:
    """The strings of one prompt format.

    Attributes:
        format: ``chat`` (the tokenizer's chat template, continuing the assistant turn),
            ``human_assistant`` (the paper's base-model format) or ``plain`` (the strings
            concatenated as they are, nothing added: compact formats such as the organisms').
        question: The human turn; ``{question}`` is replaced by the task's question.
        cot_prefix: Text the assistant turn starts with, before the CoT.
        answer_question: The follow-up human turn that asks for the answer.
        answer_prefix: Text the final assistant turn starts with; the forced answer follows it.
        add_bos: Whether ``human_assistant`` and ``plain`` prompts start with the tokenizer's BOS token.
    """

    format: str
    question: str
    cot_prefix: str
    answer_question: str
    answer_prefix: str
    add_bos: bool = True  # base models (e.g. Gemma) degenerate without their BOS token

    def __post_init__(self) -> None:
        if self.format not in FORMATS:
            raise ConfigError(f"prompt_format={self.format!r} is not allowed: choose one of {list(FORMATS)}")
        if "{question}" not in self.question:
            raise ConfigError(f"the question template {self.question!r} must contain '{{question}}'")


class PromptRenderer:
    """Renders CoT and answer prompts for one template and tokenizer."""

    def __init__(self, template: PromptTemplate, tokenizer: ChatTokenizer) -> None:
        if template.format == "chat" and not getattr(tokenizer, "chat_template", None):
            raise ConfigError(
                "prompt_format='chat' is not allowed for this model: its tokenizer has no chat "
                "template; use prompt_format=human_assistant"
            )
        self.template = template
        self.tokenizer = tokenizer

    def cot_prompt(self, question: str) -> str:
        """The prompt after which the model writes its chain of thought."""
        return self._render(question, None)

    def answer_prompt(self, question: str, cot: str) -> str:
        """The prompt that forces an answer after ``cot`` (the full, truncated or perturbed CoT)."""
        return self._render(question, cot.rstrip())  # templates differ on trailing space: drop it

    def template_hash(self) -> str:
        """A hash of both rendered prompts with placeholder contents: changes iff the wording does."""
        text = self.cot_prompt("<QUESTION>") + "\x00" + self.answer_prompt("<QUESTION>", " <COT>")
        return hashlib.sha256(text.encode()).hexdigest()[:16]

    def _render(self, question: str, cot: str | None) -> str:
        t = self.template
        human = t.question.replace("{question}", question)
        if t.format == "human_assistant":
            text = f"{self._bos()}\n\nHuman: {human}\n\nAssistant: {t.cot_prefix}"
            if cot is not None:
                text += f"{cot}\n\nHuman: {t.answer_question}\n\nAssistant: {t.answer_prefix}"
            return text
        if t.format == "plain":
            text = f"{self._bos()}{human}{t.cot_prefix}"
            return text if cot is None else f"{text}{cot}{t.answer_question}{t.answer_prefix}"
        messages = [{"role": "user", "content": human}, {"role": "assistant", "content": t.cot_prefix}]
        if cot is not None:
            messages[-1]["content"] += cot
            messages += [
                {"role": "user", "content": t.answer_question},
                {"role": "assistant", "content": t.answer_prefix},
            ]
        return self.tokenizer.apply_chat_template(messages, tokenize=False, continue_final_message=True)

    def instruction_prompt(self, instruction: str) -> str:
        """A one-turn request (e.g. "rewrite this step with a mistake"); the reply follows it."""
        if self.template.format == "human_assistant":
            return f"{self._bos()}\n\nHuman: {instruction}\n\nAssistant:"
        if self.template.format == "plain":
            return f"{self._bos()}{instruction}\n"
        messages = [{"role": "user", "content": instruction}]
        return self.tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)

    def continuation_prompt(self, question: str, cot_prefix: str) -> str:
        """The CoT prompt followed by a (perturbed) CoT prefix: the model regenerates the rest."""
        return self.cot_prompt(question) + cot_prefix

    def _bos(self) -> str:
        return (self.tokenizer.bos_token or "") if self.template.add_bos else ""

    def cot_stop(self) -> list[str]:
        """Stop strings for CoT generation (chat templates stop on their end-of-turn token).

        A ``plain`` CoT ends where the model starts the answer question itself (e.g. "Answer:").
        """
        if self.template.format == "human_assistant":
            return ["\n\nHuman:"]
        if self.template.format == "plain" and self.template.answer_question.strip():
            return [self.template.answer_question.strip()]
        return []

    def rewrite_stop(self) -> list[str]:
        """Stop strings a model-written rewrite (mistake, paraphrase) ends at, besides its own: none here."""
        return []
