"""Versioned prompts that show a conversation and one more text between boundary-token
markers, and ask a model about that text: the refine rule's draft answer
(`refine_prompts.py`), the feedback classifier's user turn (`feedback_prompts.py`).

Each version's user template has the placeholders {conversation}, {<text field>} and
{boundary}. The boundary token is the first 16 hex digits of a SHA-256 over (prompt version,
turns cut, the conversation, the text), as in the judge requests (`judge_requests.py`): text
inside a block cannot close it early, and `WrappedPrompts.read` recovers the conversation and
the text exactly (the sandbox answers from what it reads).

Pure: standard library only (and judge_requests.py for the shared conversation rendering,
context.py for the context budget).
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass

from flywheel.evaluators.context import content_chars, fit_conversation
from flywheel.evaluators.judge_requests import (
    BOUNDARY_HEX_DIGITS,
    Conversation,
    as_conversation,
    read_conversation,
    render_conversation,
    system_and_user,
)


@dataclass(frozen=True)
class WrappedPrompt:
    """One version of a prompt: `system` is sent as is; `user_template` has the placeholders
    {conversation}, the text field's and {boundary}."""

    version: str
    system: str
    user_template: str


@dataclass(frozen=True)
class WrappedRequest:
    """What a request built by `WrappedPrompts.build` holds, read back exactly."""

    version: str
    conversation: Conversation
    n_turns_dropped: int
    text: str  # the wrapped text: the draft answer, the user's next turn


def wrapped_boundary(
    version: str, conversation: Conversation, text: str, n_turns_dropped: int = 0
) -> str:
    """The boundary token of one request: a hash over everything it wraps."""
    turns = [[m["role"], m["content"]] for m in conversation]
    key = json.dumps([version, n_turns_dropped, turns, text], ensure_ascii=False)
    return hashlib.sha256(key.encode("utf-8")).hexdigest()[:BOUNDARY_HEX_DIGITS]


def _template_regex(template: str, text_field: str) -> re.Pattern[str]:
    pattern = re.escape(template)
    for name in ("conversation", text_field):
        pattern = pattern.replace(re.escape("{" + name + "}"), f"(?P<{name}>.*?)", 1)
    boundary = f"(?P<boundary>[0-9a-f]{{{BOUNDARY_HEX_DIGITS}}})"
    pattern = pattern.replace(re.escape("{boundary}"), boundary, 1)
    return re.compile(pattern.replace(re.escape("{boundary}"), "(?P=boundary)"), re.DOTALL)


class WrappedPrompts:
    """The versions of one prompt family and the name of the text it wraps."""

    def __init__(self, prompts: dict[str, WrappedPrompt], text_field: str) -> None:
        self.prompts = prompts
        self.text_field = text_field
        self._regexes = {
            version: _template_regex(prompt.user_template, text_field)
            for version, prompt in prompts.items()
        }

    def build(
        self, conversation: Conversation, text: str, version: str, n_turns_dropped: int = 0
    ) -> list[dict[str, str]]:
        """The chat messages of one request (`n_turns_dropped` earlier turns were cut from
        `conversation`; the model is told so). A KeyError names an unknown version."""
        prompt = self.prompts[version]
        turns = as_conversation(conversation)
        boundary = wrapped_boundary(version, turns, text, n_turns_dropped)
        user = prompt.user_template.format(
            conversation=render_conversation(turns, n_turns_dropped, boundary),
            boundary=boundary,
            **{self.text_field: text},
        )
        return [{"role": "system", "content": prompt.system}, {"role": "user", "content": user}]

    def fit(
        self, conversation: Conversation, text: str, version: str, max_context_chars: int | None
    ) -> tuple[list[dict[str, str]], int]:
        """The request within `max_context_chars` (the oldest turns dropped first, as for the
        judge), and the number of turns dropped."""

        def measure(kept: Conversation, n_dropped: int) -> int:
            return content_chars(self.build(kept, text, version, n_dropped))

        fitted = fit_conversation(conversation, max_context_chars, measure)
        messages = self.build(fitted.messages, text, version, fitted.n_turns_dropped)
        return messages, fitted.n_turns_dropped

    def read(self, messages: list[dict]) -> WrappedRequest | None:
        """The request's parts, from messages built by `build`; None unless the system message
        is a known version's and the boundary token matches the texts read."""
        texts = system_and_user(messages)
        if texts is None:
            return None
        system_text, user_text = texts
        for version, prompt in self.prompts.items():
            if system_text != prompt.system:
                continue
            m = self._regexes[version].fullmatch(user_text)
            if m is None:
                return None
            boundary = m.group("boundary")
            read = read_conversation(m.group("conversation"), boundary)
            if read is None:
                return None
            conversation, n_dropped = read
            text = m.group(self.text_field)
            if boundary != wrapped_boundary(version, conversation, text, n_dropped):
                return None
            return WrappedRequest(version, conversation, n_dropped, text)
        return None
