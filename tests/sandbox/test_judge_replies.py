"""The sandbox judge's replies parse back, in every protocol, to the verdict of their scores."""

from __future__ import annotations

import pytest

from flywheel.evaluators.protocols import JUDGE_PROMPTS, parse_reply
from flywheel.evaluators.protocols.scores import parse_verdict
from flywheel.evaluators.protocols.verdict import Verdict
from flywheel.sandbox.judge_replies import format_protocol_reply, format_verdict_reply


def test_formatted_reply_parses_back() -> None:
    assert parse_verdict(format_verdict_reply(9, 3, "A is right.")) == Verdict(
        True, "first", 9.0, 3.0, None
    )
    assert parse_verdict(format_verdict_reply(5, 5, "same")).winner == "tie"


@pytest.mark.parametrize("version", sorted(JUDGE_PROMPTS))
@pytest.mark.parametrize(("first", "second"), [(9, 2), (6, 5), (4, 4), (2, 8)])
def test_every_protocol_reply_the_sandbox_writes_parses_back(
    version: str, first: int, second: int
) -> None:
    verdict = parse_reply(format_protocol_reply(version, first, second, "Because."), version)
    expected = "first" if first > second else "second" if second > first else "tie"
    assert (verdict.parse_ok, verdict.winner, verdict.error) == (True, expected, None)
    protocol = JUDGE_PROMPTS[version].protocol
    if protocol in ("scores", "json"):
        assert (verdict.score_first, verdict.score_second) == (first, second)
    else:
        assert verdict.strength is not None
