"""A record's occurrence hash: the direct writer of plain `messages` records gives the text
`json.dumps(sort_keys=True, ensure_ascii=False)` gives, so stored occurrences keep their ids."""

from __future__ import annotations

import json
from typing import Any

import pytest

from flywheel.pool.records import plain_messages_json

RECORDS: list[Any] = [
    {"messages": [{"role": "user", "content": 'He said "hi"\\ and left\n\ttab'}]},
    {"messages": [{"role": "user", "content": "ctrl \x00\x1f\x7f end"}]},
    {"messages": [{"role": "system", "content": "简体中文"}, {"role": "user", "content": "🙂"}]},
    {"messages": [{"role": "user", "content": "lone \ud800 surrogate"}]},
    {"messages": [{"role": "user", "content": ""}]},
    {"messages": []},
    {"messages": [{"role": "user", "content": "x", "name": "extra key"}]},
    {"messages": [{"role": 1, "content": "role not a string"}]},
    {"messages": [{"role": "user", "content": ["parts"]}]},
    {"messages": "not a list"},
    {"prompt": "another format"},
    {"messages": [{"role": "user", "content": "x"}], "metadata": {"k": 1}},
]


@pytest.mark.parametrize("record", RECORDS)
def test_plain_messages_are_written_as_json_dumps_writes_them(record: Any) -> None:
    written = plain_messages_json(record)
    expected = json.dumps(record, sort_keys=True, ensure_ascii=False, default=str)
    assert written is None or written == expected


def test_other_shapes_are_left_to_json_dumps() -> None:
    assert plain_messages_json(RECORDS[6]) is None  # an extra key
    assert plain_messages_json(RECORDS[10]) is None  # another format
    assert plain_messages_json(RECORDS[0]) is not None
