"""The held-out general set: ordinary instructions with good answers, written for the project.

It measures whether a candidate keeps what its base knew outside the sandbox's skills (facts,
writing, how-to, reasoning, conversation, code, explanations). No item is a sandbox task (no
prompt is a checkable skill prompt), and none is copied from a public dataset. The set ships with
the package as `pool/data/general_set.jsonl`, one JSON object a line:

- `id`: a unique name (`general-01`, ...)
- `category`: facts | writing | how-to | reasoning | conversation | code | explain
- `messages`: the conversation asked, a user turn last (a few start with a system turn)
- `answer`: a good, natural answer of one to four sentences

A measurement stores the sha256 of the file's bytes (`GeneralSet.sha256`), so figures taken
over different versions of the set are never compared with each other.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

GENERAL_SET_PATH = Path(__file__).parent / "data" / "general_set.jsonl"
_ROLES = frozenset({"system", "user", "assistant"})


@dataclass(frozen=True)
class GeneralItem:
    """One instruction of the general set and its good answer."""

    item_id: str
    category: str
    messages: list[dict[str, str]]
    answer: str


@dataclass(frozen=True)
class GeneralSet:
    """The items of one version of the set and the sha256 of its file."""

    items: tuple[GeneralItem, ...]
    sha256: str


def _item(record: Any, where: str) -> GeneralItem:
    """A parsed line, or ValueError naming the line and what is wrong with it."""
    if not isinstance(record, dict):
        raise ValueError(f"{where}: expected a JSON object")
    missing = [k for k in ("id", "category", "messages", "answer") if not record.get(k)]
    if missing:
        raise ValueError(f"{where}: missing or empty {', '.join(missing)}")
    messages = record["messages"]
    well_formed = isinstance(messages, list) and all(
        isinstance(m, dict)
        and m.get("role") in _ROLES
        and isinstance(m.get("content"), str)
        and m["content"].strip()
        for m in messages
    )
    if not well_formed or messages[-1]["role"] != "user":
        raise ValueError(
            f"{where}: messages must be role/content turns with text, the last from the user"
        )
    return GeneralItem(
        item_id=str(record["id"]),
        category=str(record["category"]),
        messages=[{"role": m["role"], "content": m["content"]} for m in messages],
        answer=str(record["answer"]),
    )


def load_general_set(path: str | Path = GENERAL_SET_PATH) -> GeneralSet:
    """The items of the set at `path` (default: the one shipped) and its sha256.

    A malformed line or a repeated id raises ValueError naming the file and the line.
    """
    source = Path(path)
    data = source.read_bytes()
    items: list[GeneralItem] = []
    seen: set[str] = set()
    for line_no, line in enumerate(data.decode("utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        where = f"{source}:{line_no}"
        try:
            record = json.loads(line)
        except json.JSONDecodeError as e:
            raise ValueError(f"{where}: not JSON ({e.msg})") from e
        item = _item(record, where)
        if item.item_id in seen:
            raise ValueError(f"{where}: id {item.item_id!r} appears twice")
        seen.add(item.item_id)
        items.append(item)
    return GeneralSet(items=tuple(items), sha256=hashlib.sha256(data).hexdigest())
