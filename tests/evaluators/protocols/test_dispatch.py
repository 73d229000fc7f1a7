"""The protocol table: each version's reply is read by its own protocol's parser."""

from __future__ import annotations

import pytest

from flywheel.evaluators.protocols import JUDGE_PROMPTS, judge_prompt, parse_reply
from flywheel.evaluators.protocols.verdict import Verdict

# One literal reply per protocol, each written for these tests.
PROTOCOL_REPLIES = [
    ("v1", "Scores: 8 3\nVerdict: [[A]]", Verdict(True, "first", 8.0, 3.0, None)),
    ("arena-hard-v1", "Close.\n[[B>>A]]", Verdict(True, "second", None, None, None, 2)),
    ("mt-bench-pair-v1", "Equally good.\n[[C]]", Verdict(True, "tie", None, None, None, 0)),
    (
        "json-v1",
        '{"explanation": "x", "score_a": 3, "score_b": 8, "verdict": "B"}',
        Verdict(True, "second", 3.0, 8.0, None),
    ),
]


@pytest.mark.parametrize(("version", "reply", "expected"), PROTOCOL_REPLIES)
def test_each_protocol_maps_to_the_same_verdict_record(
    version: str, reply: str, expected: Verdict
) -> None:
    assert parse_reply(reply, version) == expected


def test_every_version_is_listed_once_with_its_own_protocol() -> None:
    assert sorted(JUDGE_PROMPTS) == sorted(v for v, _, _ in PROTOCOL_REPLIES)
    assert len({prompt.protocol for prompt in JUDGE_PROMPTS.values()}) == len(JUDGE_PROMPTS)


def test_an_unknown_version_is_read_as_v1_and_refused_for_a_prompt() -> None:
    assert parse_reply("Scores: 8 3\nVerdict: [[A]]", "v0") == Verdict(
        True, "first", 8.0, 3.0, None
    )
    with pytest.raises(ValueError, match="known versions: .*mt-bench-pair-v1, v1"):
        judge_prompt("v0")
