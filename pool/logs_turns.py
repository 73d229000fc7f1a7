"""Chat turns as production logs write them: OpenAI messages, LangChain messages, ShareGPT
turns, a bare string; timestamps as ISO text or epoch numbers.

Roles are read as OpenAI's (system, developer -> system; user; assistant; tool, function ->
tool), LangChain's `type` (system, human, ai, tool) and ShareGPT's `from` (human, gpt, ...).
A content is text or a list of content parts (the `text` of each text part, joined by blank
lines; other parts, such as images, are left out and say so: `[image]`). An assistant turn that
only calls tools becomes `[tool call] name(arguments)`.

Pure: standard library only.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

ROLES = {
    "system": "system",
    "developer": "system",
    "user": "user",
    "human": "user",
    "assistant": "assistant",
    "ai": "assistant",
    "gpt": "assistant",
    "chatgpt": "assistant",
    "bard": "assistant",
    "bing": "assistant",
    "model": "assistant",
    "tool": "tool",
    "function": "tool",
    "observation": "tool",
}
EPOCH_MS_ABOVE = 10**11  # an epoch number above this is in milliseconds (after 1973 in ms)


@dataclass(frozen=True)
class Turn:
    """One turn of a logged conversation: role system | user | assistant | tool, its text."""

    role: str
    content: str


def part_text(part: Any) -> str | None:
    """The text of one content part; `[type]` for a part that holds no text (an image)."""
    if isinstance(part, str):
        return part
    if not isinstance(part, dict):
        return None
    if isinstance(part.get("text"), str):
        return part["text"]
    kind = part.get("type")
    return f"[{kind}]" if isinstance(kind, str) else None


def content_text(content: Any) -> str | None:
    """A message content as text (see the module doc); None when it is none of those."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        texts = [part_text(part) for part in content]
        if any(t is None for t in texts):
            return None
        return "\n\n".join(t for t in texts if t is not None)
    return None


def tool_call_text(message: dict[str, Any]) -> str | None:
    calls = message.get("tool_calls") or (
        [message["function_call"]] if message.get("function_call") else []
    )
    texts = []
    for call in calls if isinstance(calls, list) else []:
        function = call.get("function", call) if isinstance(call, dict) else {}
        if isinstance(function, dict) and function.get("name"):
            texts.append(f"[tool call] {function['name']}({function.get('arguments', '')})")
    return "\n".join(texts) or None


def role_of(message: dict[str, Any]) -> str | None:
    """The role of an OpenAI, LangChain or ShareGPT message; None when it has none we know."""
    for name in ("role", "type", "from"):
        given = message.get(name)
        if isinstance(given, str) and given.lower() in ROLES:
            return ROLES[given.lower()]
    kwargs = message.get("kwargs")  # LangChain's serialised form: {"id": [...], "kwargs": {...}}
    if isinstance(kwargs, dict) and isinstance(message.get("id"), list) and message["id"]:
        name = str(message["id"][-1]).lower().removesuffix("message").removesuffix("chunk")
        return ROLES.get(name)
    return None


def plain_turn(message: Any) -> Turn | None:
    """The common message, read fast: a dict whose `role` is a role name as written in ROLES
    and whose `content` is text (an assistant's not empty), with no LangChain `kwargs`; None for
    anything else (read by `read_turn`, which gives the same Turn for these)."""
    if type(message) is not dict or "kwargs" in message:
        return None
    given, content = message.get("role"), message.get("content")
    if type(given) is not str or type(content) is not str:
        return None
    role = ROLES.get(given)
    if role is None or (role == "assistant" and not content):
        return None
    return Turn(role, content)


def read_turn(message: Any, where: str) -> Turn | str:
    """One message as a Turn, or why it cannot be read (naming `where`)."""
    if isinstance(message, str):
        return Turn("user", message)
    if not isinstance(message, dict):
        return f"{where} is not an object"
    role = role_of(message)
    if role is None:
        given = message.get("role", message.get("type", message.get("from")))
        return f"{where} has the unknown role {given!r}; roles are {', '.join(sorted(ROLES))}"
    body = message.get("kwargs") if isinstance(message.get("kwargs"), dict) else message
    text = content_text(body.get("content", body.get("value", body.get("text"))))
    if role == "assistant" and not text:
        text = tool_call_text(body)
    if text is None:
        return f"{where} ({role}) has no text `content`"
    return Turn(role, text)


def read_turns(messages: Any, field: str) -> list[Turn] | str:
    """A list of messages as Turns, or why not (naming `field` and the turn)."""
    if isinstance(messages, str):
        return [Turn("user", messages)]
    if isinstance(messages, list) and len(messages) == 1 and isinstance(messages[0], list):
        messages = messages[0]  # LangChain's batch of one: [[...messages...]]
    if not isinstance(messages, list) or not messages:
        return f"`{field}` must be a non-empty array of messages"
    turns: list[Turn] = []
    for number, message in enumerate(messages, start=1):
        turn = plain_turn(message) or read_turn(message, f"`{field}` turn {number}")
        if isinstance(turn, str):
            return turn
        turns.append(turn)
    return turns


def read_time(value: Any) -> datetime | None:
    """A log's time (ISO 8601 text, or epoch seconds or milliseconds) as naive UTC; None when
    absent or unreadable (a time is never required)."""
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, int | float):
        seconds = value / 1000 if value > EPOCH_MS_ABOVE else value
        try:
            return datetime.fromtimestamp(seconds, UTC).replace(tzinfo=None)
        except (OverflowError, OSError, ValueError):
            return None
    if isinstance(value, str):
        text = value.strip().replace("Z", "+00:00")
        try:
            moment = datetime.fromisoformat(text)
        except ValueError:
            return None
        if moment.tzinfo is not None:
            moment = moment.astimezone(UTC).replace(tzinfo=None)
        return moment
    return None


def assistant_indexes(turns: list[Turn]) -> list[int]:
    return [i for i, turn in enumerate(turns) if turn.role == "assistant"]
