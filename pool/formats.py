"""Prompt record formats: which ones are read, and how each becomes chat turns.

One record (a JSON object, a CSV row, a Parquet row) in any of these formats:

- flywheel: `prompt` (text, or a list of {role, content} turns), optionally `category`.
- OpenAI chat: `messages`, a list of {role, content}; `content` is text or a list of content
  parts (the `text` of each `{"type": "text"}` part, joined by blank lines; any other part
  type is refused). Role `developer` is a system turn. An assistant turn that only calls
  tools becomes the text `[tool call] name(arguments)`; a `tool` turn becomes a user turn
  `[tool result]` + its text; adjacent turns of the same role are then joined by a blank line,
  so user and assistant still alternate.
- ShareGPT: `conversations`, a list of {from, value}; `from` is human (or user), gpt (or
  assistant, chatgpt, bard, bing, model), system, or tool / function / observation (read as
  a `tool` turn, above). An optional top-level `system` text is the system turn.
- Alpaca: `instruction` (text), optional `input` (appended after a blank line), optional
  `output` (the reference answer), optional `system`.

A conversation that ends with an assistant turn (a chat log, or Alpaca's `output`) loses
that turn from the prompt; its text is kept as the prompt's `reference_answer`.
`category` may be text or an integer (stored as its decimal text).

`to_turns` only maps a record to raw turns; cleaning and the role order are checked in
`pool.records`. A record in none of these formats gets a reason naming the expected
fields and the nearest supported format.

Pure: standard library only.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

FORMAT_FIELDS = ("messages", "prompt", "conversations", "instruction")
SHAREGPT_ROLES = {
    "human": "user",
    "user": "user",
    "gpt": "assistant",
    "assistant": "assistant",
    "chatgpt": "assistant",
    "bard": "assistant",
    "bing": "assistant",
    "model": "assistant",
    "system": "system",
    "tool": "tool",
    "function": "tool",
    "observation": "tool",
}
OPENAI_ROLES = {
    "system": "system",
    "developer": "system",
    "user": "user",
    "assistant": "assistant",
    "tool": "tool",
    "function": "tool",
}
EXPECTED = (
    "expected `prompt` (text), `messages` (OpenAI chat turns), `conversations` (ShareGPT "
    "{from, value} turns) or `instruction` (Alpaca, with optional `input` and `output`)"
)
_PROMPT_LIKE = ("question", "query", "text", "input", "content", "user", "request", "problem")


@dataclass(frozen=True)
class Turns:
    """A record as raw chat turns (roles system | user | assistant), its format, and the
    text of a final assistant turn that was taken off as the reference answer."""

    turns: list[dict[str, str]]
    field: str  # the field the turns came from, for messages about them
    reference_answer: str | None = None


def json_type(value: Any) -> str:
    """A value's JSON type in words ("a number", "an array", ...)."""
    names = {dict: "an object", list: "an array", str: "a string", bool: "a boolean"}
    if value is None:
        return "null"
    if isinstance(value, int | float) and not isinstance(value, bool):
        return "a number"
    return names.get(type(value), type(value).__name__)


def nearest_format(obj: dict[str, Any]) -> str:
    """What to change in a record of no supported format (its fields decide the hint)."""
    names = sorted(str(k) for k in obj)
    shown = ", ".join(f"`{n}`" for n in names[:8]) or "none"
    for name in names:
        if name.lower() in _PROMPT_LIKE and isinstance(obj[name], str):
            return f"missing field: {EXPECTED}; found {shown}. Nearest: rename `{name}` to `prompt`"
    return f"missing field: {EXPECTED}; found {shown}"


def _json_if_text(value: Any) -> Any:
    """Turns given as JSON text (a CSV cell `[{...}]`) as the parsed list; else as is."""
    if isinstance(value, str) and value.lstrip().startswith("["):
        try:
            return json.loads(value)
        except json.JSONDecodeError:
            return value
    return value


def _content_text(content: Any, where: str) -> str | None | tuple[str]:
    """The text of a content (text, or a list of content parts); (reason,) when refused."""
    if content is None or isinstance(content, str):
        return content
    if not isinstance(content, list):
        return (f"{where} needs a string `content` or a list of content parts",)
    texts = []
    for part in content:
        if isinstance(part, str):
            texts.append(part)
            continue
        kind = part.get("type") if isinstance(part, dict) else None
        if kind not in ("text", "input_text") or not isinstance(part.get("text"), str):
            return (
                f"{where} has a content part of type {kind!r}; only text parts are read "
                '({"type": "text", "text": "..."})',
            )
        texts.append(part["text"])
    return "\n\n".join(texts)


def _tool_call_text(turn: dict[str, Any]) -> str | None:
    calls = turn.get("tool_calls") or ([turn["function_call"]] if turn.get("function_call") else [])
    texts = []
    for call in calls if isinstance(calls, list) else []:
        function = call.get("function", call) if isinstance(call, dict) else {}
        if isinstance(function, dict) and function.get("name"):
            texts.append(f"[tool call] {function['name']}({function.get('arguments', '')})")
    return "\n".join(texts) or None


def _chat_turns(
    turns: Any, field: str, role_key: str, text_key: str, roles: dict[str, str]
) -> list[dict[str, str]] | str:
    """Turns of an OpenAI `messages` or ShareGPT `conversations` list, roles mapped."""
    if not isinstance(turns, list) or not turns:
        got = "an empty array" if turns == [] else json_type(turns)
        return (
            f"`{field}` must be a non-empty array of {{{role_key}, {text_key}}} turns (got {got})"
        )
    out: list[tuple[dict[str, str], bool]] = []
    for number, turn in enumerate(turns, start=1):
        where = f"`{field}` turn {number}"
        if not isinstance(turn, dict) or not isinstance(turn.get(role_key), str):
            return f"{where} needs a string `{role_key}` and a string `{text_key}`"
        role = roles.get(turn[role_key].lower())
        if role is None:
            known = ", ".join(sorted(set(roles)))
            return f"wrong roles: turn {number} has role {turn[role_key]!r}; roles are {known}"
        text = _content_text(turn.get(text_key), where)
        if isinstance(text, tuple):
            return text[0]
        if role == "assistant" and not text:
            text = _tool_call_text(turn)
        if text is None:
            return f"{where} needs a string `{role_key}` and a string `{text_key}`"
        from_tool = role == "tool"
        if from_tool:
            role, text = "user", f"[tool result]\n{text}"
        out.append(({"role": role, "content": text}, from_tool))
    return _join_same_roles(out)


def _join_same_roles(turns: list[tuple[dict[str, str], bool]]) -> list[dict[str, str]]:
    """Turns with each tool result joined to the user turn before it, and adjacent system
    turns (system, developer) joined, each by a blank line."""
    joined: list[dict[str, str]] = []
    for turn, from_tool in turns:
        previous = joined[-1] if joined else None
        if (
            previous is not None
            and previous["role"] == turn["role"]
            and (from_tool or turn["role"] == "system")
        ):
            joined[-1] = {
                "role": turn["role"],
                "content": f"{previous['content']}\n\n{turn['content']}",
            }
        else:
            joined.append(turn)
    return joined


def _alpaca_turns(obj: dict[str, Any]) -> list[dict[str, str]] | str:
    instruction, extra, output = obj.get("instruction"), obj.get("input"), obj.get("output")
    for name, value in (("instruction", instruction), ("input", extra), ("output", output)):
        if value is not None and not isinstance(value, str):
            return f"Alpaca `{name}` must be text"
    text = instruction if not (extra or "").strip() else f"{instruction}\n\n{extra}"
    turns = [{"role": "user", "content": text}]
    if output is not None and output.strip():
        turns.append({"role": "assistant", "content": output})
    return turns


def _with_system(obj: dict[str, Any], turns: list[dict[str, str]]) -> list[dict[str, str]] | str:
    system = obj.get("system")
    if system is None or (isinstance(system, str) and not system.strip()):
        return turns
    if not isinstance(system, str):
        return "`system` must be text"
    if turns and turns[0]["role"] == "system":
        return "has both a `system` field and a system turn; keep one"
    return [{"role": "system", "content": system}, *turns]


def to_turns(obj: dict[str, Any]) -> Turns | str:
    """The record's raw turns in the format its fields name, or why it has none."""
    present = [name for name in FORMAT_FIELDS if obj.get(name) is not None]
    if len(present) > 1:
        names = " and ".join(f"`{n}`" for n in present)
        return f"has both {names}; keep one"
    if not present:
        return nearest_format(obj)
    field = present[0]
    value = _json_if_text(obj[field]) if field in ("messages", "conversations") else obj[field]
    if field == "prompt":
        if isinstance(value, str):
            turns: list[dict[str, str]] | str = [{"role": "user", "content": value}]
        elif not isinstance(value, list) or not value:
            got = "an empty array" if value == [] else json_type(value)
            return (
                f"`prompt` must be text or a non-empty array of {{role, content}} turns (got {got})"
            )
        else:
            turns = _chat_turns(value, "prompt", "role", "content", OPENAI_ROLES)
    elif field == "messages":
        turns = _chat_turns(value, "messages", "role", "content", OPENAI_ROLES)
    elif field == "conversations":
        turns = _chat_turns(value, "conversations", "from", "value", SHAREGPT_ROLES)
    else:
        if not isinstance(value, str):
            return "Alpaca `instruction` must be text"
        turns = _alpaca_turns(obj)
    if isinstance(turns, str):
        return turns
    if field != "messages" and field != "prompt":
        turns = _with_system(obj, turns)
        if isinstance(turns, str):
            return turns
    reference = None
    if len(turns) > 1 and turns[-1]["role"] == "assistant":
        reference = turns[-1]["content"]
        turns = turns[:-1]
    return Turns(turns, field, reference)
