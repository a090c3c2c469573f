r"""Reasoning models: the chain of thought is the thinking block, and the answer follows its closing tag.

Qwen3, the DeepSeek-R1 distills and their kin think inside ``<think>…</think>`` before they answer.
For them (``model.reasoning: think_tags``) every test acts on the thinking, not on the visible reply:

* the CoT prompt ends inside an opened block; generation stops at the closing tag or at the budget
  (``sampling.max_tokens``), and a block that was never closed is counted ("thinking cut");
* steps are split inside the thinking, and every perturbation (truncation, mistake, filler) edits it;
* a forced answer closes the block the way the chat template closes an empty one, then the answer
  prefix follows in the same turn (there is no follow-up question: a new user turn would drop the
  thinking from the history in these templates);
* no CoT is an empty thinking block exactly as the template renders it with thinking switched off
  (``enable_thinking=False`` for Qwen3), or ``<think>\\n\\n</think>\\n\\n`` written by hand for
  templates without a switch (``model.think_tags.switch: null``, the R1 distills).
"""

from __future__ import annotations

import hashlib

from faithfulness.config.sections import ModelSpec, ThinkTags
from faithfulness.engines import Completion
from faithfulness.errors import ConfigError
from faithfulness.prompts import ChatTokenizer, PromptRenderer, PromptTemplate

_PROBE = "<QUESTION>"  # a placeholder question: the block's closing text does not depend on it


def think_tags(model: ModelSpec) -> ThinkTags | None:
    """The thinking tags of a model config, or None for a model that reasons in its reply."""
    return model.think_tags if model.reasoning == "think_tags" else None


def thinking_cut(completion: Completion, tags: ThinkTags | None) -> bool | None:
    """Whether a thinking generation ended without its closing tag (budget reached, or the turn ended).

    None for models that do not reason in a thinking block.
    """
    if tags is None:
        return None
    return not (completion.finish_reason == "stop" and completion.stop_reason == tags.close)


class ThinkingRenderer(PromptRenderer):
    """Renders prompts whose CoT is the thinking block (see the module docstring).

    Args:
        template: The ``chat`` prompt strings; ``cot_prefix`` starts the thinking, ``answer_question``
            is not asked (the answer follows the closed block in the same turn).
        tokenizer: The model's tokenizer, with its chat template.
        tags: The model's thinking tags.

    Raises:
        ConfigError: when the format is not ``chat``, or the template lacks the configured switch,
            or its empty thinking block does not close the block the CoT prompt opens.
    """

    def __init__(self, template: PromptTemplate, tokenizer: ChatTokenizer, tags: ThinkTags) -> None:
        if template.format != "chat":
            raise ConfigError(
                f"prompt_format={template.format!r} is not allowed with model.reasoning=think_tags: "
                "the thinking block is the chat template's, use prompt_format=chat"
            )
        super().__init__(template, tokenizer)
        self.tags = tags
        source = str(getattr(tokenizer, "chat_template", ""))
        if tags.switch is not None and tags.switch not in source:
            raise ConfigError(
                f"this model's chat template has no thinking switch {tags.switch!r}: set "
                "model.think_tags.switch to the template's switch variable, or to null to write "
                f"the empty block ({tags.open}, a blank line, {tags.close}) by hand"
            )
        opened, empty = self._opened(self._human(_PROBE)), self._empty(self._human(_PROBE))
        if not empty.startswith(opened) or tags.close not in empty[len(opened) :]:
            raise ConfigError(
                f"with {tags.switch}=False this chat template renders {empty[-40:]!r}, which does not "
                f"close the block its thinking prompt {opened[-40:]!r} opens: set "
                "model.think_tags.switch=null to write the empty block by hand"
            )
        self.closing = empty[len(opened) :]  # e.g. "\n</think>\n\n": what follows the thinking before the answer

    def cot_prompt(self, question: str) -> str:
        """The prompt up to an opened thinking block (and ``cot_prefix``); the thinking follows."""
        return self._opened(self._human(question)) + self.template.cot_prefix

    def answer_prompt(self, question: str, cot: str) -> str:
        """The thinking ``cot`` closed the template's way, then the answer prefix; no CoT is the empty block."""
        thinking = (self.template.cot_prefix + cot).rstrip()  # templates strip the thinking's trailing newlines
        if not thinking:
            return self._empty(self._human(question)) + self.template.answer_prefix
        return self._opened(self._human(question)) + thinking + self.closing + self.template.answer_prefix

    def instruction_prompt(self, instruction: str) -> str:
        """A one-turn request answered without thinking (after an empty block): a rewrite is not reasoning."""
        return self._empty(instruction)

    def rewrite_stop(self) -> list[str]:
        """A rewritten step or paraphrase ends where it would open or close a block: it goes inside one."""
        return [self.tags.open, self.tags.close]

    def cot_stop(self) -> list[str]:
        """The closing tag ends the thinking (the end-of-turn token ends it too, counted as cut)."""
        return [self.tags.close]

    def template_hash(self) -> str:
        """A hash of every prompt shape (thinking, closed thinking, empty block, rewrite) and the stop tag."""
        shapes = [self.cot_prompt(_PROBE), self.answer_prompt(_PROBE, " <COT>"), self.answer_prompt(_PROBE, "")]
        text = "\x00".join([*shapes, self.instruction_prompt(_PROBE), *self.cot_stop()])
        return hashlib.sha256(text.encode()).hexdigest()[:16]

    def _human(self, question: str) -> str:
        return self.template.question.replace("{question}", question)

    def _generation_prompt(self, content: str, thinking: bool) -> str:
        """The template's prompt for one user turn, with thinking on or (where it has a switch) off."""
        kwargs = {} if self.tags.switch is None else {self.tags.switch: thinking}
        messages = [{"role": "user", "content": content}]
        return self.tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True, **kwargs)

    def _opened(self, content: str) -> str:
        """The user turn, then an opened thinking block."""
        prompt = self._generation_prompt(content, True)
        # R1 templates open the block themselves; Qwen3's leave it to the model, which writes "<think>\n" first
        return prompt if prompt.rstrip("\n").endswith(self.tags.open) else prompt + self.tags.open + "\n"

    def _empty(self, content: str) -> str:
        """The user turn, then an empty thinking block: the template's (switch off), or written by hand."""
        if self.tags.switch is None:
            return self._opened(content) + f"\n{self.tags.close}\n\n"  # what Qwen3's switch and R1 users write
        return self._generation_prompt(content, False)


def make_renderer(model: ModelSpec, template: PromptTemplate, tokenizer: ChatTokenizer) -> PromptRenderer:
    """The renderer a model config asks for: thinking-block prompts for reasoning models, else the plain ones."""
    tags = think_tags(model)
    return PromptRenderer(template, tokenizer) if tags is None else ThinkingRenderer(template, tokenizer, tags)
