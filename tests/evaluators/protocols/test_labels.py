"""The label rules every text protocol shares: final verdicts over drafts, every bracket
style, never a guess, and the five labels' strength."""

from __future__ import annotations

import pytest

from flywheel.evaluators.protocols.scores import parse_verdict
from flywheel.evaluators.protocols.verdict import Verdict

VERDICT_LAYOUTS = {
    "final_verdict_over_a_draft": (
        "Draft verdict: [[A]]\nOn a second look B is right.\nFinal verdict: [[B]]",
        "second",
    ),
    "final_over_plain_verdict_lines": (
        "Verdict: [[A]]\nWait, I misread.\nFinal verdict: [[B]]",
        "second",
    ),
    "think_block_is_ignored": (
        "<think>Maybe [[A]]... no.\nVerdict: [[A]]</think>\nScores: 2 8\nVerdict: [[B]]",
        "second",
    ),
    "lone_closing_think_tag_ends_the_draft": (
        "leaning [[A]] here\n</think>\nVerdict: [[B]]",
        "second",
    ),
    "single_brackets_on_a_verdict_line": ("Scores: 8 2\nVerdict: [A]", "first"),
    "tie_label": ("Scores: 6 6\nVerdict: [[Tie]]", "tie"),
    "full_width_brackets": ("Verdict：［［B］］", "second"),
    "lenticular_brackets": ("最终裁决：【A】\nVerdict: 【A】", "first"),
    "my_final_verdict_sentence": ("Both are close.\nMy final verdict is: [[A]]", "first"),
    "five_label_sentence": (
        "My final verdict is: Assistant B is slightly better: [[B>A]]",
        "second",
    ),
}


@pytest.mark.parametrize("layout", sorted(VERDICT_LAYOUTS))
def test_the_final_verdict_is_read_over_drafts_and_in_every_bracket_style(layout: str) -> None:
    reply, winner = VERDICT_LAYOUTS[layout]
    verdict = parse_verdict(reply)
    assert (verdict.parse_ok, verdict.winner) == (True, winner), verdict.error


NEVER_GUESS = {
    "negated_label": (
        "I cannot pick [[A]] here; both answers are wrong in different ways.",
        "negated",
    ),
    "negated_final_sentence": ("My final verdict is not [[A]]", "negated"),
    "contradicted_label": ("Overall [[A]] since Assistant B is clearly better.", "contradicted"),
    "contradicted_final_sentence": (
        "My final verdict is: Assistant A is better: [[B>A]]",
        "contradicted",
    ),
    "two_final_verdicts": ("Final verdict: [[A]]\nFinal verdict: [[B]]", "conflicting"),
    "two_plain_verdict_lines": ("Verdict: [[A]]\nVerdict: [[B]]", "conflicting"),
    "only_a_draft": ("Draft verdict: [[A]]\nI need to think more.", "no verdict"),
    "only_inside_think": ("<think>Verdict: [[A]]</think>\nI am not sure.", "no verdict"),
    "single_bracket_in_prose": ("Assistant [A] is fine, see [B].", "no verdict"),
}


@pytest.mark.parametrize("case", sorted(NEVER_GUESS))
def test_a_negated_contradicted_or_doubled_verdict_stays_unparsed(case: str) -> None:
    reply, reason = NEVER_GUESS[case]
    verdict = parse_verdict(reply)
    assert (verdict.parse_ok, verdict.winner) == (False, None)
    assert reason in (verdict.error or ""), verdict.error


def test_five_labels_carry_their_strength() -> None:
    assert parse_verdict("[[A>>B]]") == Verdict(
        True, "first", None, None, "scores missing: no `Scores: X Y` line", 2
    )
    assert parse_verdict("Verdict: [[B>A]]").strength == 1
    assert (
        parse_verdict("Verdict: [[A=B]]").winner,
        parse_verdict("Verdict: [[A=B]]").strength,
    ) == ("tie", 0)
    assert parse_verdict("Verdict: [[A]]").strength is None
