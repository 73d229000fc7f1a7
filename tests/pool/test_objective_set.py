"""pool/objective_set.py: a user's checkable eval set read from JSONL; a bad line is refused with
one line naming the file, the line and the fix."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

from flywheel.pool.objective_set import ObjectiveSetError, read_objective_set


def write_lines(path: Path, lines: list[str]) -> Path:
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def test_each_accepted_form_becomes_a_user_turn_and_an_expected_answer(tmp_path: Path) -> None:
    messages = [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "Capital of France?"},
    ]
    path = write_lines(
        tmp_path / "evals.jsonl",
        [
            json.dumps({"prompt": "What is 3 + 4?", "answer": "7"}),
            "",
            json.dumps(
                {
                    "question": "Tom has 2 apples and buys 3. How many?",
                    "answer": "He has 2 + 3 = 5.\n#### 5",
                }
            ),
            json.dumps({"messages": messages, "answer": "Paris"}),
            json.dumps({"prompt": "12 * 12?", "answer": 144}),
        ],
    )
    objective = read_objective_set(path)
    assert [(i.line_no, i.answer) for i in objective.items] == [
        (1, "7"),
        (3, "5"),
        (4, "Paris"),
        (5, "144"),
    ]
    assert objective.items[0].messages == [{"role": "user", "content": "What is 3 + 4?"}]
    assert objective.items[2].messages == messages
    assert objective.sha256 == hashlib.sha256(path.read_bytes()).hexdigest()
    assert objective.path == str(path)


@pytest.mark.parametrize(
    ("line", "problem"),
    [
        ("{not json", "line 2: not JSON"),
        ('["What is 3 + 4?", "7"]', "line 2: expected a JSON object, got list"),
        (
            '{"text": "What is 3 + 4?", "answer": "7"}',
            "line 2: no prompt (expected `prompt`, `question` or `messages`)",
        ),
        ('{"prompt": "What is 3 + 4?"}', "line 2: no `answer` (the expected final answer)"),
        ('{"prompt": "What is 3 + 4?", "answer": "  "}', "line 2: `answer` is empty"),
        (
            '{"prompt": "What is 3 + 4?", "answer": null}',
            "line 2: `answer` must be the expected final answer as text or a number, got nothing",
        ),
        ('{"prompt": "What is 3 + 4?", "answer": true}', "got bool"),
        ('{"prompt": "", "answer": "7"}', "line 2: `prompt` must be non-empty text"),
        (
            '{"messages": [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "7"}], "answer": "7"}',
            "line 2: `messages` must be a list of {role, content} turns",
        ),
    ],
)
def test_a_bad_line_is_refused_on_one_line_naming_it_and_the_fix(
    tmp_path: Path, line: str, problem: str
) -> None:
    path = write_lines(
        tmp_path / "evals.jsonl", ['{"prompt": "What is 1 + 1?", "answer": "2"}', line]
    )
    with pytest.raises(ObjectiveSetError) as refused:
        read_objective_set(path)
    message = str(refused.value)
    assert "\n" not in message
    assert message.startswith(f"objective set {path} ")
    assert problem in message
    assert ". Fix: " in message


def test_a_missing_empty_or_binary_file_is_refused_with_the_fix(tmp_path: Path) -> None:
    with pytest.raises(
        ObjectiveSetError, match="no such file. Fix: point evaluation.objective_set"
    ):
        read_objective_set(tmp_path / "absent.jsonl")
    with pytest.raises(ObjectiveSetError, match="no items. Fix: one JSON object a line"):
        read_objective_set(write_lines(tmp_path / "blank.jsonl", ["", "  "]))
    binary = tmp_path / "binary.jsonl"
    binary.write_bytes(b"\xff\xfe{}")
    with pytest.raises(ObjectiveSetError, match="not UTF-8 text .byte 0.. Fix: save it as UTF-8"):
        read_objective_set(binary)
