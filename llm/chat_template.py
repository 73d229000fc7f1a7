"""Chat templates for training: can this one train, and how the loss stays on the answer.

Most released chat templates (Llama 3, Qwen2.5, Mistral, Gemma, SmolLM) have no
`{% generation %}` markers, which TRL's assistant-only loss on `messages` rows needs. A template
that is prefix-preserving (the prompt rendered with the generation prompt is a prefix of the
prompt plus the assistant's answer) trains the same way from prompt/completion rows instead:
TRL masks the prompt and keeps the loss on the completion. `template_problem` says why a
template can do neither, with the fix (`completion_problem`: why it cannot train the second
way); `completion_rows` turns `messages` rows into prompt/completion rows.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # the registry imports this module: no training library at import
    from transformers import PreTrainedTokenizerBase

Message = dict[str, Any]
# TRL's own test (trl.chat_template_utils.has_generation_markers; importing trl costs ~3 s)
_GENERATION_MARKER = re.compile(r"\{%-?\s*generation\s*-?%\}")
_QUESTION_PROBE = "FLYWHEEL-QUESTION-PROBE"
_ANSWER_PROBE = "FLYWHEEL-ANSWER-PROBE"
_TURN_PROBE = "FLYWHEEL-END-OF-TURN-PROBE"
_FIX_TEMPLATE = (
    "Fix: use a chat-tuned checkpoint whose template renders each turn the same whatever "
    "follows, or replace `chat_template` in its tokenizer_config.json (or chat_template.jinja)."
)


def has_generation_markers(tokenizer: PreTrainedTokenizerBase) -> bool:
    """True when the chat template marks the assistant's tokens with `{% generation %}`."""
    template = tokenizer.chat_template
    if isinstance(template, dict):  # named variants: `default` is the one used
        template = template.get("default")
    return isinstance(template, str) and _GENERATION_MARKER.search(template) is not None


def end_of_turn_token(tokenizer: PreTrainedTokenizerBase) -> str | None:
    """The special token the chat template writes right after an assistant turn's content
    (Llama-3 `<|eot_id|>`, Qwen2.5 `<|im_end|>`, Gemma `<end_of_turn>`), or None when the
    template writes none there or cannot render a two-turn conversation."""
    conversation = [
        {"role": "user", "content": "hi"},
        {"role": "assistant", "content": _TURN_PROBE},
    ]
    try:
        rendered = tokenizer.apply_chat_template(conversation, tokenize=False)
    except Exception:  # a template may refuse this conversation (jinja raise_exception)
        return None
    if not isinstance(rendered, str) or _TURN_PROBE not in rendered:
        return None
    after = rendered.split(_TURN_PROBE, 1)[1]
    ids = tokenizer(after, add_special_tokens=False)["input_ids"] if after else []
    special = {i for i, t in tokenizer.added_tokens_decoder.items() if t.special}
    if not ids or ids[0] not in special | set(tokenizer.all_special_ids):
        return None
    return tokenizer.convert_ids_to_tokens(ids[0])


def template_problem(tokenizer: PreTrainedTokenizerBase) -> str | None:
    """Why this tokenizer's chat template cannot train with the loss on the assistant's answer
    (one sentence and its fix), or None when it can: with `{% generation %}` markers, or
    prefix-preserving with an end-of-turn token after the answer."""
    if has_generation_markers(tokenizer):
        return None
    return completion_problem(tokenizer)


def completion_problem(tokenizer: PreTrainedTokenizerBase) -> str | None:
    """Why this tokenizer's chat template cannot train prompt/completion rows with the loss on
    the completion (one sentence and its fix), or None when it can: prefix-preserving with an
    end-of-turn token after the answer, `{% generation %}` markers or not."""
    if tokenizer.chat_template is None:
        return (
            "its tokenizer has no chat template, so conversations cannot be rendered. Fix: use a "
            "chat-tuned checkpoint, or add a `chat_template` to its tokenizer_config.json."
        )
    prompt: list[Message] = [{"role": "user", "content": _QUESTION_PROBE}]
    answer: Message = {"role": "assistant", "content": _ANSWER_PROBE}
    try:
        prompt_text = tokenizer.apply_chat_template(
            prompt, tokenize=False, add_generation_prompt=True
        )
        full_text = tokenizer.apply_chat_template([*prompt, answer], tokenize=False)
    except Exception as e:  # jinja raise_exception, a missing variable
        return (
            f"its chat template cannot render a user question and an answer ({e}). {_FIX_TEMPLATE}"
        )
    if not full_text.startswith(prompt_text):
        return (
            "its chat template is not prefix-preserving: the prompt rendered for generation is "
            "not the start of the prompt followed by the assistant's answer, so the loss cannot "
            f"be kept on the answer. {_FIX_TEMPLATE}"
        )
    if end_of_turn_token(tokenizer) is None:
        return (
            "its chat template writes no special end-of-turn token after the assistant's answer, "
            "so the model cannot learn where an answer stops. Fix: end each assistant turn with "
            "a special token (such as eos_token) in `chat_template`."
        )
    return None


def completion_rows(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """`{"messages": [...]}` rows as TRL's conversational prompt/completion rows: the prompt is
    every message before the last assistant turn, the completion that turn (messages after it
    are dropped); other columns are kept. A row without an assistant turn raises ValueError."""
    converted = []
    for row in rows:
        messages = row["messages"]
        last = max(
            (i for i, message in enumerate(messages) if message["role"] == "assistant"),
            default=None,
        )
        if last is None or last == 0:
            raise ValueError(f"an SFT row needs a prompt and an assistant turn: {messages!r}")
        rest = {key: value for key, value in row.items() if key != "messages"}
        converted.append({**rest, "prompt": messages[:last], "completion": [messages[last]]})
    return converted
