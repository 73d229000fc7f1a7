"""`sandbox traffic --model champion`: the day's users talk with the warehouse's current
champion, answered through student.backend as the round answers, and the logs name it."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from flywheel.errors import InputError
from flywheel.llm.checkpoints import LocalGenerator
from flywheel.sandbox.traffic_day import write_traffic_day
from flywheel.warehouse.lifecycle import register_base_model
from tests.conftest import load_config_in
from tests.tasks.answer_judge_fixtures import tiny_student  # noqa: F401


def messages_records(out: Path) -> list[dict]:
    path = next(out.glob("day-001.messages.jsonl"))
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_a_local_champion_answers_the_days_users(
    tmp_path: Path,
    tiny_student: Path,  # noqa: F811 (the fixture imported above)
) -> None:
    config = load_config_in(tmp_path, "smoke", student={"max_new_tokens": 8})
    version = register_base_model(config.warehouse, str(tiny_student)).version_id
    out = tmp_path / "traffic"
    write_traffic_day(config.sandbox, 1, out, 10, model="champion", config=config)

    records = messages_records(out)
    assert records and {r["model"] for r in records} == {version}
    turns = records[0]["messages"]
    first_answer = next(i for i, t in enumerate(turns) if t["role"] == "assistant")
    generator = LocalGenerator.load(tiny_student)
    (expected,) = generator.generate(
        [[{"role": t["role"], "content": t["content"]} for t in turns[:first_answer]]],
        max_new_tokens=8,
        batch_size=1,
    )
    assert turns[first_answer]["content"] == expected.text


def test_an_endpoint_champion_answers_through_the_sandbox(
    tmp_path: Path,
    tiny_student: Path,  # noqa: F811 (the fixture imported above)
) -> None:
    endpoint = {"name": "student", "base_url": "sandbox", "model": "sandbox-mixed"}
    config = load_config_in(tmp_path, "smoke", student={"endpoint": endpoint})
    register_base_model(config.warehouse, str(tiny_student))
    out = tmp_path / "traffic"
    report = write_traffic_day(config.sandbox, 1, out, 10, model="champion", config=config)
    assert report.n_answers > 0
    answers = [t for r in messages_records(out) for t in r["messages"] if t["role"] == "assistant"]
    assert any("Answer:" in t["content"] for t in answers)  # the sandbox model's answers


def test_the_champion_needs_a_config(tmp_path: Path) -> None:
    config = load_config_in(tmp_path, "smoke")
    with pytest.raises(InputError, match="--model champion needs"):
        write_traffic_day(config.sandbox, 1, tmp_path / "out", 5, model="champion")
    with pytest.raises(InputError, match="or champion for --model"):
        write_traffic_day(config.sandbox, 1, tmp_path / "out", 5, model="nope")
