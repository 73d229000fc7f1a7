"""The sandbox's simulated users: a day of logs in every format, seeded, with the truth apart;
honest thumbs follow the truth, the planted flatterers thumb up confident wrong answers."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from flywheel.config import SandboxConfig
from flywheel.errors import InputError
from flywheel.pool.logs_files import plan_read, read_lines
from flywheel.pool.logs_formats import Conversation, parse_log_record
from flywheel.sandbox.traffic_day import write_traffic_day
from flywheel.sandbox.traffic_personas import FEEDBACK_TEXTS
from tests.conftest import load_config_in


@pytest.fixture
def sandbox(tmp_path: Path) -> SandboxConfig:
    return load_config_in(tmp_path).sandbox


def truth_of(report) -> list[dict]:
    return [json.loads(line) for line in report.truth_path.read_text().splitlines()]


def test_a_day_is_the_same_every_time_and_days_differ(
    sandbox: SandboxConfig, tmp_path: Path
) -> None:
    first = write_traffic_day(sandbox, 3, tmp_path / "a", n_conversations=40)
    again = write_traffic_day(sandbox, 3, tmp_path / "b", n_conversations=40)
    other = write_traffic_day(sandbox, 4, tmp_path / "c", n_conversations=40)
    texts = [[p.read_bytes() for p in r.paths] for r in (first, again, other)]
    assert texts[0] == texts[1] != texts[2]
    assert first.truth_path.read_bytes() == again.truth_path.read_bytes()


def test_every_record_is_in_its_log_format_and_the_truth_lies_apart(
    sandbox: SandboxConfig, tmp_path: Path
) -> None:
    report = write_traffic_day(sandbox, 1, tmp_path, n_conversations=50)
    assert sorted(p.name for p in tmp_path.glob("*.jsonl")) == [
        "day-001.arena.jsonl",
        "day-001.langfuse.jsonl",
        "day-001.langsmith.jsonl",
        "day-001.messages.jsonl",
        "day-001.openai-log.jsonl",
    ]
    assert report.truth_path.parent != tmp_path
    for path in report.paths:
        log_format = path.name.split(".")[1]
        for line in read_lines(plan_read(path, [], set())):
            parsed = parse_log_record(line.record)
            assert isinstance(parsed, list), (path.name, line.line_no, parsed)
            assert all(isinstance(c, Conversation) and c.log_format == log_format for c in parsed)


def test_honest_thumbs_follow_the_truth_and_flatterers_thumb_up_wrong_answers(
    sandbox: SandboxConfig, tmp_path: Path
) -> None:
    truth = truth_of(write_traffic_day(sandbox, 1, tmp_path, n_conversations=300))
    honest = [t for t in truth if not t["planted"] and t["thumb"]]
    assert honest and all((t["thumb"] == "up") == t["correct"] for t in honest)
    sycophantic = [t for t in truth if t["planted"] and t["thumb"] == "up" and not t["correct"]]
    assert sycophantic and all(t["committed"] is not None for t in sycophantic)
    planted = [t for t in truth if t["planted"] and t["next_category"]]
    assert planted and {t["next_category"] for t in planted} == {"positive"}


def test_feedback_turns_carry_their_category_and_what_the_user_meant(
    sandbox: SandboxConfig, tmp_path: Path
) -> None:
    truth = truth_of(write_traffic_day(sandbox, 2, tmp_path, n_conversations=300))
    by_category = {t["next_category"]: t for t in truth if t["next_category"]}
    assert set(by_category) == {"repeat", "correction", "complaint", "clarification", "positive"}
    correction = by_category["correction"]
    assert correction["correct"] is False and correction["expected"] in correction["next_turn"]
    assert by_category["repeat"]["question"] in by_category["repeat"]["next_turn"]
    assert by_category["complaint"]["next_turn"] in FEEDBACK_TEXTS["complaint"]


def test_an_unknown_model_is_refused_naming_the_known_ones(
    sandbox: SandboxConfig, tmp_path: Path
) -> None:
    with pytest.raises(InputError, match="'nope' is not in sandbox.models. Fix: pass one of"):
        write_traffic_day(sandbox, 1, tmp_path, model="nope")


def test_a_correction_turn_is_also_logged_as_the_answer_the_user_wanted(
    sandbox: SandboxConfig, tmp_path: Path
) -> None:
    from flywheel.evaluators.skills import check_answer

    report = write_traffic_day(sandbox, 2, tmp_path, n_conversations=300)
    truth = {
        (t["log_format"], t["external_id"], t["turn_index"]): t
        for t in truth_of(report)
        if t["log_format"] in ("langsmith", "messages")
    }
    corrections = []
    for path in report.paths:
        for line in read_lines(plan_read(path, [], set())):
            for conversation in parse_log_record(line.record):
                for feedback in conversation.feedback:
                    if feedback.correction is None:
                        continue
                    key = (conversation.log_format, conversation.external_id, feedback.turn_index)
                    corrections.append((feedback, truth[key]))
    wanted = [t for t in truth.values() if t["next_category"] == "correction"]
    assert len(corrections) == len(wanted) and {t["log_format"] for t in wanted} == {
        "langsmith",
        "messages",
    }
    for feedback, answer_truth in corrections:
        assert answer_truth["next_category"] == "correction" and not answer_truth["correct"]
        assert feedback.label == "negative"
        assert check_answer(answer_truth["question"], feedback.correction)
