"""A correction after a final verdict never yields the earlier verdict: the reply is read by
its last verdict when that verdict outranks the earlier one, else it stays unparsed; prose
after a verdict that does not correct it leaves the verdict as it is."""

from __future__ import annotations

import pytest

from flywheel.evaluators.protocols import parse_reply
from flywheel.evaluators.protocols.verdict import Verdict

# Literal replies, each written for these tests in the layouts public suites show.
V1_OPENING = """Scores: 8 6
Explanation: Assistant A converts 72°F to 22.2°C correctly; Assistant B rounds to 22°C \
without saying so."""

MT_BENCH_PAIR_OPENING = """Assistant A lists the steps to reverse a linked list in place and \
gives code that handles the empty list. Assistant B gives the same steps, but its code \
returns the old head, so the reversed list is lost."""

CORRECTED = {
    "label_in_prose_after_the_verdict_line": (
        V1_OPENING + "\nVerdict: [[A]]\n\nWait, on reflection Assistant B is better: 22°C is "
        "what the user asked for, rounded to whole degrees. [[B]]",
        "v1",
    ),
    "the_other_answer_better_suited_after_it": (
        V1_OPENING + "\nVerdict: [[A]]\n\nAssistant B is better suited to what the user asked.",
        "v1",
    ),
    "revision_in_words_only": (
        V1_OPENING + "\nVerdict: [[A]]\n\nWait, on reflection B is better.",
        "v1",
    ),
    "revision_cue_without_a_new_winner": (
        V1_OPENING + "\nVerdict: [[A]]\n\nActually, let me reconsider the rounding rule.",
        "v1",
    ),
    "lower_rank_verdict_after_the_final_one": (
        "Final verdict: [[A]]\nI misread the second answer.\nVerdict: [[B]]",
        "v1",
    ),
    "prose_label_then_a_correction": (
        MT_BENCH_PAIR_OPENING + "\n\n[[A]]\n\nOn second thought, Assistant B's answer is "
        "better, since A's code also drops the tail.",
        "mt-bench-pair-v1",
    ),
    "five_label_then_a_correction": (
        "Both answers are close.\n\nMy final verdict is: Assistant A is slightly better: "
        "[[A>B]]\n\nCorrection: Assistant B is slightly better: [[B>A]]",
        "arena-hard-v1",
    ),
}


@pytest.mark.parametrize("case", sorted(CORRECTED))
def test_a_correction_after_the_verdict_leaves_the_reply_unparsed(case: str) -> None:
    reply, version = CORRECTED[case]
    verdict = parse_reply(reply, version)
    assert (verdict.parse_ok, verdict.winner) == (False, None)
    assert "corrected after it" in (verdict.error or ""), verdict.error


READ_AS_THE_LAST_VERDICT = {
    "final_verdict_outranks_the_earlier_verdict_line": (
        V1_OPENING.replace("8 6", "6 8")
        + "\nVerdict: [[A]]\nWait, on reflection B is better.\nFinal verdict: [[B]]",
        "v1",
        Verdict(True, "second", 6.0, 8.0, None),
    ),
    "draft_then_final_in_five_labels": (
        "Draft verdict: [[A>B]]\nAfter checking the edge case, B is right.\n"
        "My final verdict is: Assistant B is significantly better: [[B>>A]]",
        "arena-hard-v1",
        Verdict(True, "second", None, None, None, 2),
    ),
    "double_check_that_confirms": (
        MT_BENCH_PAIR_OPENING + "\n\n[[A]]\n\nWait, let me double-check A's code... it "
        "handles the empty list. Yes: [[A]]",
        "mt-bench-pair-v1",
        Verdict(True, "first", None, None, None, 1),
    ),
}


@pytest.mark.parametrize("case", sorted(READ_AS_THE_LAST_VERDICT))
def test_a_verdict_that_comes_after_the_correction_is_read(case: str) -> None:
    reply, version, expected = READ_AS_THE_LAST_VERDICT[case]
    assert parse_reply(reply, version) == expected


UNCORRECTED = {
    "courtesy_after_the_verdict": (V1_OPENING + "\nVerdict: [[A]]\n\nHope this helps!", "v1"),
    "reasons_for_the_same_winner": (
        V1_OPENING + "\nVerdict: [[A]]\n\nAssistant A is better because it states the "
        "precision it used.",
        "v1",
    ),
    "same_label_repeated": (MT_BENCH_PAIR_OPENING + "\n\n[[A]]\n\nSo: [[A]].", "mt-bench-pair-v1"),
    "the_other_answer_better_in_one_respect": (
        V1_OPENING + "\nVerdict: [[A]]\n\nAssistant B's response is better organized, and B "
        "is better at formatting, but neither outweighs the wrong rounding.",
        "v1",
    ),
}


@pytest.mark.parametrize("case", sorted(UNCORRECTED))
def test_prose_after_a_verdict_that_does_not_correct_it_keeps_it(case: str) -> None:
    reply, version = UNCORRECTED[case]
    verdict = parse_reply(reply, version)
    assert (verdict.parse_ok, verdict.winner) == (True, "first"), verdict.error
