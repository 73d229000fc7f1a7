"""The pair protocol (mt-bench-pair-v1): `[[A]]`, `[[B]]` or `[[C]]`, no scores asked."""

from __future__ import annotations

import pytest

from flywheel.evaluators.protocols.pair import parse_pair
from flywheel.evaluators.protocols.verdict import Verdict

# Literal replies, each written for these tests.
REPLIES = [
    (
        "Assistant B follows the instructions.\n\n[[B]]",
        Verdict(True, "second", None, None, None, 1),
    ),
    ("Equally good.\n[[C]]", Verdict(True, "tie", None, None, None, 0)),
]


@pytest.mark.parametrize(("reply", "expected"), REPLIES)
def test_pair_replies_map_to_the_verdict_record(reply: str, expected: Verdict) -> None:
    assert parse_pair(reply) == expected


def test_an_unparsed_pair_reply_stays_unparsed() -> None:
    verdict = parse_pair("Both have merits.")
    assert (verdict.parse_ok, verdict.winner, verdict.strength) == (False, None, None)
