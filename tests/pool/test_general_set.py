"""pool/general_set.py: the shipped general set loads, is not sandbox tasks, and is checked."""

from __future__ import annotations

import hashlib
import json
from collections import Counter
from pathlib import Path

import pytest

from flywheel.evaluators.general_check import collapses_into_answer_format
from flywheel.evaluators.skills import identify_skill
from flywheel.pool.general_set import GENERAL_SET_PATH, load_general_set


def test_the_shipped_set_has_about_sixty_varied_items() -> None:
    general = load_general_set()
    categories = Counter(item.category for item in general.items)
    assert 55 <= len(general.items) <= 70
    assert set(categories) >= {"facts", "writing", "how-to", "reasoning", "conversation", "code"}
    assert all(count >= 4 for count in categories.values())
    assert sum(item.messages[0]["role"] == "system" for item in general.items) >= 3
    assert general.sha256 == hashlib.sha256(GENERAL_SET_PATH.read_bytes()).hexdigest()


def test_no_item_is_a_sandbox_task_or_answers_in_its_format() -> None:
    for item in load_general_set().items:
        assert all(identify_skill(m["content"]) is None for m in item.messages), item.item_id
        assert not collapses_into_answer_format(item.answer), item.item_id
        assert "Answer:" not in item.answer, item.item_id


def test_the_capital_of_france_is_paris() -> None:
    items = {item.messages[-1]["content"]: item for item in load_general_set().items}
    assert items["What is the capital of France?"].answer == "The capital of France is Paris."


def _write(path: Path, records: list[object]) -> Path:
    path.write_text("\n".join(json.dumps(r) for r in records) + "\n", encoding="utf-8")
    return path


GOOD = {
    "id": "a",
    "category": "facts",
    "messages": [{"role": "user", "content": "Hi?"}],
    "answer": "Hello.",
}


def test_a_malformed_line_is_refused_naming_the_line(tmp_path: Path) -> None:
    bad_turns = dict(GOOD, id="b", messages=[{"role": "assistant", "content": "x"}])
    path = _write(tmp_path / "set.jsonl", [GOOD, bad_turns])
    with pytest.raises(ValueError, match=r"set.jsonl:2: messages must be"):
        load_general_set(path)
    path = _write(tmp_path / "set.jsonl", [GOOD, dict(GOOD, answer="")])
    with pytest.raises(ValueError, match=r"set.jsonl:2: missing or empty answer"):
        load_general_set(path)


def test_a_repeated_id_is_refused(tmp_path: Path) -> None:
    path = _write(tmp_path / "set.jsonl", [GOOD, GOOD])
    with pytest.raises(ValueError, match="id 'a' appears twice"):
        load_general_set(path)
