"""The JSON protocol (json-v1): one JSON object, fenced or bare, else the text layouts."""

from __future__ import annotations

import pytest

from flywheel.evaluators.protocols import JUDGE_PROMPTS
from flywheel.evaluators.protocols.json_verdict import parse_json_reply
from flywheel.evaluators.protocols.verdict import Verdict

# Literal replies, each written for these tests.
REPLIES = [
    (
        '{"explanation": "A is right.", "score_a": 9, "score_b": 2, "verdict": "A"}',
        Verdict(True, "first", 9.0, 2.0, None),
    ),
    (
        'Sure.\n```json\n{"explanation": "same", "score_a": 6.5, "score_b": 6, "verdict": "tie"}\n```',
        Verdict(True, "tie", 6.5, 6.0, None),
    ),
    (
        '<think>{"verdict": "A"}</think>\n{"explanation": "x", "score_a": 3, "score_b": 8, "verdict": "B"}',
        Verdict(True, "second", 3.0, 8.0, None),
    ),
    ("Scores: 8 3\nVerdict: [[A]]", Verdict(True, "first", 8.0, 3.0, None)),  # text fallback
]


@pytest.mark.parametrize(("reply", "expected"), REPLIES)
def test_json_replies_map_to_the_verdict_record(reply: str, expected: Verdict) -> None:
    assert parse_json_reply(reply) == expected


@pytest.mark.parametrize(
    ("reply", "reason"),
    [
        (
            '{"verdict": "A", "score_a": 9, "score_b": 2}\n{"verdict": "B"}',
            "conflicting verdicts in JSON",
        ),
        ('{"verdict": "maybe", "score_a": 5, "score_b": 5}', "JSON verdict must be A, B or tie"),
    ],
)
def test_json_replies_never_guess(reply: str, reason: str) -> None:
    verdict = parse_json_reply(reply)
    assert (verdict.parse_ok, verdict.winner) == (False, None) and reason in (verdict.error or "")


# AlpacaEval-style replies that name the assistant in the verdict; written for these tests.
NAMED_VERDICTS = [
    (
        '{"explanation": "Output A follows the word limit; B runs to 300 words.", '
        '"score_a": 8, "score_b": 5, "verdict": "Assistant A"}',
        Verdict(True, "first", 8.0, 5.0, None),
    ),
    (
        'Here is my evaluation.\n```json\n{"explanation": "B cites the source.", "score_a": 4, '
        '"score_b": 7, "verdict": "assistant b"}\n```',
        Verdict(True, "second", 4.0, 7.0, None),
    ),
    (
        '{"explanation": "x", "score_a": 9, "score_b": 3, "verdict": "A"}\n'
        '{"explanation": "x", "score_a": 9, "score_b": 3, "verdict": "Response A"}',
        Verdict(True, "first", 9.0, 3.0, None),
    ),  # the same winner named two ways is no conflict
]


@pytest.mark.parametrize(("reply", "expected"), NAMED_VERDICTS)
def test_a_verdict_naming_the_assistant_is_read(reply: str, expected: Verdict) -> None:
    assert parse_json_reply(reply) == expected


@pytest.mark.parametrize(
    ("reply", "reason"),
    [
        ('{"verdict": "Assistant A is better", "score_a": 8, "score_b": 5}', "must be A, B"),
        ('{"verdict": "Assistant C", "score_a": 8, "score_b": 5}', "must be A, B"),
        ('{"verdict": "Assistant", "score_a": 8, "score_b": 5}', "must be A, B"),
        ('{"verdict": "Assistant A"}\n{"verdict": "Assistant B"}', "conflicting verdicts"),
    ],
)
def test_near_misses_of_a_named_verdict_stay_unparsed(reply: str, reason: str) -> None:
    verdict = parse_json_reply(reply)
    assert (verdict.parse_ok, verdict.winner) == (False, None)
    assert reason in (verdict.error or ""), verdict.error


def test_the_prompt_asks_for_the_schema_with_response_format() -> None:
    assert JUDGE_PROMPTS["json-v1"].response_format["type"] == "json_schema"
