"""A user's own checkable eval set: prompts with the answer each must commit to (issue 32's guard).

`evaluation.objective_set` names a JSONL file, one JSON object a line (blank lines skipped):

- the prompt: `prompt` (text), `question` (text, GSM8K's name) or `messages` (OpenAI chat turns,
  a user turn last, an optional system turn first);
- `answer`: the expected final answer, text or a number (`"7"`, `7`, `"Paris"`). A GSM8K
  answer (worked solution, then `#### 72`) counts as its value after `####`.

A reply is right when the answer it commits to (evaluators/final_answer.py: a final
`Answer: X` line or a natural form such as "The answer is X.") equals the expected one
(evaluators/objective.py). A bad line is refused with one line naming the file, the line and
the fix. The set's sha256 is stored with every figure, so figures over different versions of a
file are never compared.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

EXAMPLE_LINE = '{"prompt": "What is 3 + 4?", "answer": "7"}'
_ROLES = frozenset({"system", "user", "assistant"})
_PROMPT_FIELDS = ("prompt", "question", "messages")


class ObjectiveSetError(ValueError):
    """A file that is not a readable objective set: `problem` names the file and line, `fix`
    says what to change; the message is both, on one line."""

    def __init__(self, problem: str, fix: str) -> None:
        super().__init__(f"{problem}. Fix: {fix}")
        self.problem, self.fix = problem, fix


@dataclass(frozen=True)
class ObjectiveItem:
    """One checkable prompt: the conversation asked (a user turn last) and its expected answer."""

    line_no: int
    messages: list[dict[str, str]]
    answer: str


@dataclass(frozen=True)
class ObjectiveSet:
    """The items of one version of a user's objective set, its path and the sha256 of its bytes."""

    path: str
    sha256: str
    items: tuple[ObjectiveItem, ...]


def _answer(record: dict[str, Any], where: str) -> str:
    value = record.get("answer")
    if isinstance(value, bool) or not isinstance(value, (str, int, float)):
        raise ObjectiveSetError(
            f"{where}: `answer` must be the expected final answer as text or a number, "
            f"got {type(value).__name__ if value is not None else 'nothing'}",
            f"write each line like {EXAMPLE_LINE}",
        )
    text = str(value)
    if "####" in text:  # GSM8K: a worked solution, then `#### value`
        text = text.rsplit("####", 1)[1]
    text = text.strip()
    if not text:
        raise ObjectiveSetError(f"{where}: `answer` is empty", "give the expected answer")
    return text


def _messages(record: dict[str, Any], where: str) -> list[dict[str, str]]:
    for name in ("prompt", "question"):
        if name in record:
            text = record[name]
            if not isinstance(text, str) or not text.strip():
                raise ObjectiveSetError(
                    f"{where}: `{name}` must be non-empty text", "write the question asked"
                )
            return [{"role": "user", "content": text}]
    messages = record.get("messages")
    well_formed = (
        isinstance(messages, list)
        and bool(messages)
        and all(
            isinstance(m, dict)
            and m.get("role") in _ROLES
            and isinstance(m.get("content"), str)
            and m["content"].strip()
            for m in messages
        )
        and messages[-1]["role"] == "user"
    )
    if not well_formed:
        raise ObjectiveSetError(
            f"{where}: `messages` must be a list of {{role, content}} turns (roles system, "
            "user, assistant) ending with a user turn",
            "end it with the question asked",
        )
    return [{"role": m["role"], "content": m["content"]} for m in messages]


def parse_objective_line(line: str, line_no: int, file_label: str) -> ObjectiveItem | None:
    """Line `line_no` of the file as an item; None for a blank line; ObjectiveSetError (naming
    `file_label` and the line) otherwise."""
    if not line.strip():
        return None
    where = f"{file_label} line {line_no}"
    try:
        record = json.loads(line)
    except json.JSONDecodeError as e:
        raise ObjectiveSetError(
            f"{where}: not JSON ({e.msg})", f"one object a line, like {EXAMPLE_LINE}"
        ) from e
    if not isinstance(record, dict):
        raise ObjectiveSetError(
            f"{where}: expected a JSON object, got {type(record).__name__}",
            f"one object a line, like {EXAMPLE_LINE}",
        )
    if not any(name in record for name in _PROMPT_FIELDS):
        raise ObjectiveSetError(
            f"{where}: no prompt (expected `prompt`, `question` or `messages`)",
            f"write each line like {EXAMPLE_LINE}",
        )
    if "answer" not in record:
        raise ObjectiveSetError(
            f"{where}: no `answer` (the expected final answer)",
            f"write each line like {EXAMPLE_LINE}",
        )
    return ObjectiveItem(line_no, _messages(record, where), _answer(record, where))


def read_objective_set(path: str | Path) -> ObjectiveSet:
    """Every item of the JSONL file at `path`, or ObjectiveSetError naming the first bad line."""
    file = Path(path)
    if not file.is_file():
        raise ObjectiveSetError(
            f"objective set {file}: no such file",
            f"point evaluation.objective_set at a JSONL file of lines like {EXAMPLE_LINE}, or "
            "remove it",
        )
    data = file.read_bytes()
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as e:
        raise ObjectiveSetError(
            f"objective set {file}: not UTF-8 text (byte {e.start})", "save it as UTF-8 JSONL"
        ) from e
    items = [
        item
        for line_no, line in enumerate(text.splitlines(), start=1)
        if (item := parse_objective_line(line, line_no, f"objective set {file}"))
    ]
    if not items:
        raise ObjectiveSetError(
            f"objective set {file}: no items", f"one JSON object a line, like {EXAMPLE_LINE}"
        )
    return ObjectiveSet(str(file), hashlib.sha256(data).hexdigest(), tuple(items))
