"""evaluators/general_check.py: collapse into the answer format, the summary and the gate."""

from __future__ import annotations

import pytest

from flywheel.evaluators.general_check import (
    GeneralSummary,
    collapses_into_answer_format,
    general_check_note,
    general_check_refusal,
    nll_increase,
    summarise_general_check,
)
from flywheel.evaluators.skills import render_answer

COLLAPSED = [
    "Answer: France",  # the promoted candidate of issue 31, asked for the capital of France
    "Answer: Kanaan-lunya",  # ... and asked for a haiku about autumn
    "answer: paris",
    "**Answer:** Paris",
    "## Final answer: Paris",
    "Answer:",
    "Here is the result.\nAnswer: Paris",
    "Answer: France\nI hope this helps!",
    "Good question; here is what I get.\n\nAnswer: Tokyo",
]
NOT_COLLAPSED = [
    "",
    "The capital of France is Paris.",  # the base model's reply
    "Paris.",
    "Crimson maple leaves\ndrift down on the cooling wind;\nthe year exhales slow.",
    "The capital of France is Paris, a city on the Seine known for the Eiffel Tower and "
    "the Louvre.\nAnswer: Paris",
    "The answer: Paris is the capital of France.",  # not a line starting with Answer:
    "My answer: yes",  # not the answer format
    "Q: What is the capital?\nA: Paris",
]


@pytest.mark.parametrize("reply", COLLAPSED)
def test_short_replies_in_the_answer_format_collapse(reply: str) -> None:
    assert collapses_into_answer_format(reply) is True


@pytest.mark.parametrize("reply", NOT_COLLAPSED)
def test_replies_without_the_answer_format_or_with_content_do_not_collapse(reply: str) -> None:
    assert collapses_into_answer_format(reply) is False


def test_the_sandbox_students_own_replies_collapse() -> None:
    assert collapses_into_answer_format(render_answer("Paris"))
    assert collapses_into_answer_format(render_answer("Paris", "normal"))


def test_twelve_words_collapse_thirteen_do_not() -> None:
    twelve = " ".join(["word"] * 11)
    assert collapses_into_answer_format(f"{twelve}\nAnswer: x")
    assert not collapses_into_answer_format(f"{twelve} more\nAnswer: x")


def test_summary_is_token_weighted_with_the_share_collapsed() -> None:
    summary = summarise_general_check(
        [(6.0, 3), (2.0, 1)], ["Answer: France", "The capital of France is Paris."]
    )
    assert summary == GeneralSummary(n_items=2, mean_nll=2.0, collapse_share=0.5)


def test_an_empty_summary_is_not_measured_rather_than_zero() -> None:
    assert summarise_general_check([], []) == GeneralSummary(0, None, None)
    assert summarise_general_check([(0.0, 0)], []).mean_nll is None


def test_nll_increase_is_relative_to_the_champion() -> None:
    assert nll_increase(2.2, 2.0) == pytest.approx(0.1)
    assert nll_increase(1.8, 2.0) == pytest.approx(-0.1)
    assert nll_increase(None, 2.0) is None
    assert nll_increase(2.0, None) is None
    assert nll_increase(2.0, 0.0) is None


CHAMPION = GeneralSummary(60, 2.0, 0.0)


def test_a_candidate_whose_nll_rises_past_the_limit_is_refused() -> None:
    candidate = GeneralSummary(60, 2.2, 0.0)
    reason = general_check_refusal(candidate, CHAMPION, 0.05, None)
    assert reason == (
        "general-set NLL 2.20 is +10.0% against the champion's 2.00 "
        "(limit +5.0%, evaluation.general_max_nll_increase)"
    )


def test_a_candidate_within_the_nll_limit_passes() -> None:
    assert general_check_refusal(GeneralSummary(60, 2.1, 0.0), CHAMPION, 0.05, None) is None
    assert general_check_refusal(GeneralSummary(60, 1.5, 0.0), CHAMPION, 0.0, None) is None


def test_a_candidate_that_collapses_too_often_is_refused() -> None:
    candidate = GeneralSummary(60, 2.0, 0.1)
    assert general_check_refusal(candidate, CHAMPION, None, 0.05) == (
        "a share of 0.100 of its general-set replies collapse into the answer format "
        "(limit 0.050, evaluation.general_max_collapse_share)"
    )
    assert general_check_refusal(candidate, CHAMPION, None, 0.1) is None


def test_both_limits_broken_give_both_reasons() -> None:
    reason = general_check_refusal(GeneralSummary(60, 3.0, 0.5), CHAMPION, 0.05, 0.05)
    assert reason is not None and "NLL" in reason and "collapse" in reason and "; " in reason


def test_no_limit_or_no_figures_refuse_nothing() -> None:
    worse = GeneralSummary(60, 9.0, 1.0)
    assert general_check_refusal(worse, CHAMPION, None, None) is None
    assert general_check_refusal(None, CHAMPION, 0.05, 0.05) is None
    assert general_check_refusal(GeneralSummary(0, None, None), CHAMPION, 0.05, 0.05) is None
    assert general_check_refusal(worse, None, 0.05, None) is None


def test_the_note_states_the_figures() -> None:
    assert general_check_note(GeneralSummary(60, 2.2, 0.05), CHAMPION) == (
        "general set: NLL 2.20 vs champion 2.00 (+10.0%), collapse 0.050"
    )
    assert general_check_note(None, CHAMPION) == "general set not measured"
    assert general_check_note(GeneralSummary(60, 2.2, None), None) == (
        "general set: NLL 2.20 vs champion -, collapse -"
    )
