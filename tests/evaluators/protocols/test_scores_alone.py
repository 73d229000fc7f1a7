"""Under a protocol that asks for scores (v1, and JSON's text fallback), a reply that scores
both answers and names no label is read by its scores: the higher wins, equal is a tie.
Every near miss stays unparsed; the label protocols never read scores alone."""

from __future__ import annotations

import pytest

from flywheel.evaluators.protocols import parse_reply
from flywheel.evaluators.protocols.json_verdict import parse_json_reply
from flywheel.evaluators.protocols.verdict import Verdict

# Literal replies, each written for these tests in the layouts public suites show.
VICUNA_REVIEW = """8 6
Assistant 1 gave a correct, step-by-step derivation of the compound interest and ended with \
the right amount, $1,157.63. Assistant 2 used the simple-interest formula, so its final \
figure of $1,150.00 is wrong, although its explanation of the terms is clear."""

VICUNA_REVIEW_EQUAL = """7 7
Both assistants list the same three causes of the French Revolution with similar depth; \
Assistant 1 is a little more concise and Assistant 2 adds a date, which balances out."""

SCORES_BLOCK_WITHOUT_VERDICT = """Scores: 3 9
Explanation: Assistant A's regex accepts `user@@example.com`; Assistant B's pattern is \
correct and explains each part."""

LABELLED_SCORES_REVIEW = """**Assistant A**: The haiku keeps the 5-7-5 pattern and the \
autumn image.
**Assistant B**: Four lines, so it is not a haiku.

Assistant A score: 9/10
Assistant B score: 4/10"""

SCORES_THEN_ONE_LINE_EACH = """Scores:
Assistant 1: 6
Assistant 2: 8.5
Assistant 2 handles the empty list; Assistant 1 raises an IndexError on it."""

READ_BY_SCORES = {
    "vicuna_review_first_line_pair": (VICUNA_REVIEW, Verdict(True, "first", 8.0, 6.0, None)),
    "vicuna_review_equal_scores_tie": (VICUNA_REVIEW_EQUAL, Verdict(True, "tie", 7.0, 7.0, None)),
    "scores_line_and_explanation_without_verdict": (
        SCORES_BLOCK_WITHOUT_VERDICT,
        Verdict(True, "second", 3.0, 9.0, None),
    ),
    "labelled_score_per_assistant": (
        LABELLED_SCORES_REVIEW,
        Verdict(True, "first", 9.0, 4.0, None),
    ),
    "lone_scores_line_then_one_line_each_half_point": (
        SCORES_THEN_ONE_LINE_EACH,
        Verdict(True, "second", 6.0, 8.5, None),
    ),
    "review_granting_the_loser_one_respect": (
        "9 7\nAssistant 2 is better organized, but Assistant 1 gives the correct boiling point "
        "at altitude.",
        Verdict(True, "first", 9.0, 7.0, None),
    ),
    "scores_after_a_think_block": (
        "<think>Maybe B... [[B]]</think>\nScores: 9 4\nExplanation: A is right.",
        Verdict(True, "first", 9.0, 4.0, None),
    ),
}


@pytest.mark.parametrize("case", sorted(READ_BY_SCORES))
def test_a_reply_with_both_scores_and_no_label_is_read_by_its_scores(case: str) -> None:
    reply, expected = READ_BY_SCORES[case]
    assert parse_reply(reply, "v1") == expected


def test_json_fallback_text_is_read_by_its_scores_too() -> None:
    assert parse_reply(VICUNA_REVIEW, "json-v1") == Verdict(True, "first", 8.0, 6.0, None)


def test_a_json_object_with_scores_and_no_verdict_is_read_by_its_scores() -> None:
    reply = '{"explanation": "A cites the right year.", "score_a": 8, "score_b": 5}'
    assert parse_json_reply(reply) == Verdict(True, "first", 8.0, 5.0, None)
    tie = '```json\n{"explanation": "Both fine.", "score_a": 6, "score_b": 6}\n```'
    assert parse_json_reply(tie) == Verdict(True, "tie", 6.0, 6.0, None)
    labelled = 'Verdict: [[B]]?\n{"explanation": "x", "score_a": 8, "score_b": 5}'
    assert parse_json_reply(labelled).winner == "second"  # a label outside: read by the label


NEVER_GUESSED = {
    "two_different_score_pairs": (
        "Scores: 8 6\nExplanation: A is more complete.\nScores: 5 9",
        "no verdict",
    ),
    "two_values_for_one_answer": (
        "Assistant A: 8/10\nAssistant B: 6/10\nOn the second turn:\nAssistant A: 4/10",
        "no verdict",
    ),
    "only_unlabelled_score_lines": (
        "The first answer is thorough.\nScore: 8/10\n\nThe second answer is vague.\nScore: 4/10",
        "no verdict",
    ),
    "one_answer_scored": ("Assistant A: 8/10\nAssistant B did not answer at all.", "no verdict"),
    "mt_bench_single_rating": (
        "The answer is accurate and well organised.\n\nRating: [[8]]",
        "no verdict",
    ),
    "score_out_of_range": ("Scores: 12 3\nExplanation: A is far better.", "out of range"),
    "words_prefer_the_lower_score": (
        "8 6\nAssistant 1 is detailed but wrong; overall Assistant 2 is better.",
        "prefer another answer",
    ),
    "words_call_unequal_scores_a_tie": (
        "Scores: 8 7\nExplanation: Both are equally good; it is a tie.",
        "a tie",
    ),
    "reply_revises_itself": (
        "Scores: 8 6\nExplanation: A looks right. Wait, on reflection its total is off by one.",
        "revises itself",
    ),
    "verdict_in_words_without_brackets": (
        "Scores: 8 3\nExplanation: A is right.\nVerdict: A",
        "no verdict",
    ),
    "negated_label_beside_scores": (
        "Scores: 8 3\nI cannot pick [[A]] with confidence; both miss the unit.",
        "negated",
    ),
    "draft_verdict_beside_scores": (
        "Draft verdict: [[B]]\nScores: 8 3\nI need to check the arithmetic again.",
        "no verdict",
    ),
}


@pytest.mark.parametrize("case", sorted(NEVER_GUESSED))
def test_scores_without_a_clean_reading_stay_unparsed(case: str) -> None:
    reply, reason = NEVER_GUESSED[case]
    verdict = parse_reply(reply, "v1")
    assert (verdict.parse_ok, verdict.winner) == (False, None)
    assert reason in (verdict.error or ""), verdict.error


@pytest.mark.parametrize(
    "reply",
    [
        '{"explanation": "x", "score_a": 8, "score_b": 5}\n{"explanation": "y", "score_a": 4, "score_b": 9}',
        '{"explanation": "x", "score_a": "eight", "score_b": 5}',
        '{"explanation": "Assistant B is better.", "score_a": 8, "score_b": 5}',
    ],
)
def test_json_scores_without_a_clean_reading_stay_unparsed(reply: str) -> None:
    verdict = parse_json_reply(reply)
    assert (verdict.parse_ok, verdict.winner) == (False, None), verdict


@pytest.mark.parametrize("version", ["arena-hard-v1", "mt-bench-pair-v1"])
def test_label_protocols_never_read_scores_alone(version: str) -> None:
    verdict = parse_reply(VICUNA_REVIEW, version)
    assert (verdict.parse_ok, verdict.winner) == (False, None)
    assert "no verdict" in (verdict.error or "")
