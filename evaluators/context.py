"""An endpoint's context budget: the one rule that fits a conversation into it.

Budget: `max_context_chars` of an endpoint counts characters of message contents (roughly 4
per token, as `llm.client.estimate_tokens` plans costs), everything the request carries: for a
reference the conversation, for the judge its instructions, the conversation and both answers.

Rule (the only one): the system prompt and the last user turn are always kept; the oldest
user/assistant exchanges are dropped, a whole exchange at a time (so the kept turns still
start with the user and alternate), until the request fits. When even the system prompt and
the last user turn do not fit, they are sent as they are (never cut inside a turn; the
endpoint may refuse it and the call's error says so). The number of dropped turns is returned
so that the caller can tell the judge, and count it.

Pure: standard library only.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

Measure = Callable[[list[dict[str, str]], int], int]


@dataclass(frozen=True)
class FittedConversation:
    """The turns that fit the budget, and how many earlier turns were dropped."""

    messages: list[dict[str, str]]
    n_turns_dropped: int


def content_chars(messages: Sequence[dict[str, str]]) -> int:
    """Characters of every message's content."""
    return sum(len(m.get("content") or "") for m in messages)


def fit_conversation(
    messages: Sequence[dict[str, str]],
    max_chars: int | None,
    measure: Measure | None = None,
) -> FittedConversation:
    """The conversation cut by the module's rule to `max_chars`; None: no budget, every turn
    kept. `measure(kept turns, n dropped)` gives the characters of the whole request those
    turns make (default: their content characters)."""
    size = measure or (lambda kept, _dropped: content_chars(kept))
    turns = [dict(m) for m in messages]
    if max_chars is None or size(turns, 0) <= max_chars:
        return FittedConversation(turns, 0)
    head = turns[:1] if turns and turns[0].get("role") == "system" else []
    body = turns[len(head) :]
    dropped = 0
    while len(body) > 1 and size(head + body, dropped) > max_chars:
        step = 2 if len(body) > 2 else 1  # a user turn and the assistant's reply to it
        body = body[step:]
        dropped += step
    return FittedConversation(head + body, dropped)
