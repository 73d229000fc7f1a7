"""The five-labels protocol (arena-hard-v1): a label's winner and strength, no scores asked."""

from __future__ import annotations

import pytest

from flywheel.evaluators.protocols import JUDGE_PROMPTS
from flywheel.evaluators.protocols.five_labels import parse_five_labels
from flywheel.evaluators.protocols.verdict import Verdict

# Literal replies, each written for these tests.
REPLIES = [
    (
        "Assistant A computes 85 correctly; Assistant B adds wrongly.\n\n"
        "My final verdict is: Assistant A is significantly better: [[A>>B]]",
        Verdict(True, "first", None, None, None, 2),
    ),
    (
        "Both are fine.\n\nMy final verdict is tie: [[A=B]]",
        Verdict(True, "tie", None, None, None, 0),
    ),
    ("B is a little clearer.\n[[B>A]]", Verdict(True, "second", None, None, None, 1)),
]


@pytest.mark.parametrize(("reply", "expected"), REPLIES)
def test_five_label_replies_map_to_the_verdict_record(reply: str, expected: Verdict) -> None:
    assert parse_five_labels(reply) == expected


def test_the_prompt_lists_the_five_labels() -> None:
    system = JUDGE_PROMPTS["arena-hard-v1"].system
    assert all(f"[[{label}]]" in system for label in ("A>>B", "A>B", "A=B", "B>A", "B>>A"))
