"""Labels as judges write them beside the asked-for ones: reversed five labels (`[[B<A]]`), a
tie worded with a negation ("neither is better: [[A=B]]"), the same winner at two strengths,
and a comparison of two labels (`[[B]] is better than [[A]]`): read correctly or unparsed."""

from __future__ import annotations

import pytest

from flywheel.evaluators.protocols import parse_reply
from flywheel.evaluators.protocols.verdict import Verdict

# Literal replies, each written for these tests in Arena-Hard's and MT-bench's layouts.
ARENA_HARD_OPENING = """My own answer: the function should return the two largest distinct \
values, or None when there are fewer than two.

Evaluation of Assistant A's answer: it sorts a set of the values and returns the last two; \
correct, but O(n log n).

Evaluation of Assistant B's answer: it keeps two running maxima in one pass; correct and \
O(n), though it does not handle an empty list explicitly.
"""

READ = {
    "reversed_label_slightly": (
        ARENA_HARD_OPENING + "\nMy final verdict is: Assistant A is slightly better: [[B<A]]",
        "arena-hard-v1",
        Verdict(True, "first", None, None, None, 1),
    ),
    "reversed_label_significantly": (
        ARENA_HARD_OPENING + "\nMy final verdict is: Assistant B is significantly better: [[A<<B]]",
        "arena-hard-v1",
        Verdict(True, "second", None, None, None, 2),
    ),
    "reversed_tie": (
        ARENA_HARD_OPENING + "\nMy final verdict is tie: [[B=A]]",
        "arena-hard-v1",
        Verdict(True, "tie", None, None, None, 0),
    ),
    "neither_is_better_tie": (
        ARENA_HARD_OPENING + "\nMy final verdict is: neither is better: [[A=B]]",
        "arena-hard-v1",
        Verdict(True, "tie", None, None, None, 0),
    ),
    "neither_nor_tie": (
        ARENA_HARD_OPENING
        + "\nNeither Assistant A nor Assistant B is clearly better, so my final verdict is a "
        "tie: [[A=B]]",
        "arena-hard-v1",
        Verdict(True, "tie", None, None, None, 0),
    ),
    "no_significant_difference_tie": (
        ARENA_HARD_OPENING + "\nThere is no significant difference between the two answers.\n\n"
        "My final verdict is: Tie, relatively the same: [[A=B]]",
        "arena-hard-v1",
        Verdict(True, "tie", None, None, None, 0),
    ),
    "same_winner_two_strengths_the_last_counts": (
        ARENA_HARD_OPENING + "\nAssistant B is slightly better [[B>A]], and given the "
        "complexity difference perhaps significantly better: [[B>>A]]",
        "arena-hard-v1",
        Verdict(True, "second", None, None, None, 2),
    ),
    "same_winner_two_final_lines_the_last_counts": (
        ARENA_HARD_OPENING + "\nMy final verdict is: Assistant A is significantly better: "
        "[[A>>B]]\nMy final verdict is: Assistant A is slightly better: [[A>B]]",
        "arena-hard-v1",
        Verdict(True, "first", None, None, None, 1),
    ),
    "label_compared_with_label": (
        "Assistant B explains why the loop terminates and Assistant A does not. After "
        "comparing them, [[B]] is better than [[A]].",
        "mt-bench-pair-v1",
        Verdict(True, "second", None, None, None, 1),
    ),
    "label_compared_as_worse": (
        "Both compile, but [[A]] is clearly worse than [[B]] on the second test case.",
        "mt-bench-pair-v1",
        Verdict(True, "second", None, None, None, 1),
    ),
    "comparison_on_a_verdict_line": (
        "Scores: 4 8\nExplanation: B handles leap years.\nVerdict: [[B]] is better than [[A]]",
        "v1",
        Verdict(True, "second", 4.0, 8.0, None),
    ),
}


@pytest.mark.parametrize("case", sorted(READ))
def test_labels_as_judges_write_them_are_read_correctly(case: str) -> None:
    reply, version, expected = READ[case]
    assert parse_reply(reply, version) == expected


NEVER_GUESSED = {
    "reversed_label_against_its_sentence": (
        ARENA_HARD_OPENING + "\nMy final verdict is: Assistant B is slightly better: [[B<A]]",
        "arena-hard-v1",
        "contradicted",
    ),
    "neither_is_better_with_a_decisive_label": (
        ARENA_HARD_OPENING + "\nMy final verdict is: neither is better: [[A>B]]",
        "arena-hard-v1",
        "negated",
    ),
    "not_a_tie_with_a_tie_label": (
        ARENA_HARD_OPENING + "\nIt is not a tie, A is better: [[A=B]]",
        "arena-hard-v1",
        "negated",
    ),
    "cannot_call_it_a_tie": (
        ARENA_HARD_OPENING + "\nI cannot call this a tie [[A=B]]",
        "arena-hard-v1",
        "negated",
    ),
    "two_strengths_of_different_winners": (
        ARENA_HARD_OPENING + "\nAssistant A is slightly better [[A>B]], or rather [[B>>A]].",
        "arena-hard-v1",
        "conflicting",
    ),
    "comparison_negated": (
        "I do not think [[B]] is better than [[A]]; they make the same mistake.",
        "mt-bench-pair-v1",
        "negated",
    ),
    "comparison_with_not_better": (
        "[[B]] is not better than [[A]] on the edge case.",
        "mt-bench-pair-v1",
        "conflicting",
    ),
}


@pytest.mark.parametrize("case", sorted(NEVER_GUESSED))
def test_near_misses_of_those_labels_stay_unparsed(case: str) -> None:
    reply, version, reason = NEVER_GUESSED[case]
    verdict = parse_reply(reply, version)
    assert (verdict.parse_ok, verdict.winner) == (False, None)
    assert reason in (verdict.error or ""), verdict.error
