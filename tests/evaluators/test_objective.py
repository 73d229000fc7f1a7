"""evaluators/objective.py: a reply's final answer against the expected one (both ways), the
accuracy's interval, and the guard's decision in every case: passes, refused, reported only,
cannot apply, off."""

from __future__ import annotations

import pytest

from flywheel.evaluators.abtest import Decision
from flywheel.evaluators.objective import (
    ObjectiveComparison,
    ObjectiveScore,
    guarded_decision,
    objective_verdict,
    reply_is_right,
    score_objective,
)


@pytest.mark.parametrize(
    ("expected", "reply"),
    [
        ("7", "Answer: 7"),
        ("7", "3 + 4 = 7."),
        ("7", "The answer is 7."),
        ("7", "Answer: 7.0"),
        ("1200", "Answer: 1,200"),
        ("Paris", "The capital of France is **Paris**."),
        ("olleh", "Answer: OLLEH"),
        ("-3", "\\boxed{-3}"),
        ("new york", "Answer: New   York"),
    ],
)
def test_a_reply_committing_to_the_expected_answer_is_right(expected: str, reply: str) -> None:
    assert reply_is_right(expected, reply)


@pytest.mark.parametrize(
    ("expected", "reply"),
    [
        ("7", "Answer: 8"),
        ("7", "It is 7, or maybe 8."),  # commits to nothing
        ("7", "Answer: 7\nWait, it is 8."),  # prose after the answer line
        ("7", "I cannot tell."),
        ("7", ""),
        ("Paris", "Answer: France"),
        ("12", "Answer: 1.2"),
    ],
)
def test_a_reply_committing_to_another_answer_or_none_is_wrong(expected: str, reply: str) -> None:
    assert not reply_is_right(expected, reply)


def test_accuracy_comes_with_a_seeded_interval_around_it() -> None:
    score = score_objective([True, True, True, False] * 10, n_samples=500, seed=3)
    assert score is not None
    assert (score.n_items, score.n_correct, score.accuracy) == (40, 30, 0.75)
    assert 0.55 < score.ci_low < 0.75 < score.ci_high < 0.9
    assert score_objective([True, True, True, False] * 10, n_samples=500, seed=3) == score


def test_no_item_has_no_score() -> None:
    assert score_objective([]) is None


def score(accuracy: float, n_items: int = 100) -> ObjectiveScore:
    return ObjectiveScore(
        n_items, round(accuracy * n_items), accuracy, accuracy - 0.1, accuracy + 0.1
    )


def comparison(candidate: float, champion: float) -> ObjectiveComparison:
    return ObjectiveComparison(
        "the sandbox's checkers on 100 held-out prompts", score(candidate), score(champion)
    )


PASSING = Decision(promote=True, reason="win rate 0.700 [0.620, 0.780] over 100 prompts")


def test_a_small_drop_within_the_margin_passes_and_says_so() -> None:
    verdict = objective_verdict(comparison(0.38, 0.42), max_drop=0.05)
    assert verdict.outcome == "passed"
    decision = guarded_decision(PASSING, verdict)
    assert decision.promote
    assert decision.reason == (
        "win rate 0.700 [0.620, 0.780] over 100 prompts; objective set (the sandbox's checkers "
        "on 100 held-out prompts): accuracy 0.380 [0.280, 0.480] vs champion 0.420 "
        "[0.320, 0.520] (-0.040), within the limit of -0.050"
    )


def test_a_drop_exactly_at_the_margin_passes() -> None:
    assert objective_verdict(comparison(0.30, 0.35), max_drop=0.05).outcome == "passed"


def test_a_drop_past_the_margin_refuses_a_winning_candidate_naming_figures_and_limit() -> None:
    verdict = objective_verdict(comparison(0.30, 0.42), max_drop=0.05)
    decision = guarded_decision(PASSING, verdict)
    assert verdict.outcome == "refused" and not decision.promote
    assert decision.reason.startswith(PASSING.reason + "; objective set (")
    assert decision.reason.endswith(
        "accuracy 0.300 [0.200, 0.400] vs champion 0.420 [0.320, 0.520] (-0.120); refused on "
        "the objective set: accuracy 0.120 below the champion's (limit 0.050, "
        "evaluation.objective_max_drop)"
    )


def test_any_drop_is_refused_at_margin_zero_and_a_gain_always_passes() -> None:
    assert objective_verdict(comparison(0.41, 0.42), max_drop=0.0).outcome == "refused"
    assert objective_verdict(comparison(0.90, 0.42), max_drop=0.0).outcome == "passed"


def test_without_a_limit_the_figures_are_reported_and_never_decide() -> None:
    verdict = objective_verdict(comparison(0.10, 0.90), max_drop=None)
    assert verdict.outcome == "reported"
    decision = guarded_decision(PASSING, verdict)
    assert decision.promote and decision.reason.endswith("(-0.800), reported only")


def test_without_an_objective_set_the_guard_says_it_cannot_apply() -> None:
    verdict = objective_verdict(None, max_drop=0.05, why_missing="no objective set")
    assert verdict.outcome == "cannot_apply"
    decision = guarded_decision(PASSING, verdict)
    assert decision.promote  # it cannot refuse what it cannot measure, but it says so
    assert decision.reason == (
        f"{PASSING.reason}; objective guard cannot apply: no objective set "
        "(evaluation.objective_max_drop 0.050 not checked)"
    )


def test_off_and_unmeasured_says_nothing() -> None:
    verdict = objective_verdict(None, max_drop=None)
    assert verdict.outcome == "off" and verdict.note is None
    assert guarded_decision(PASSING, verdict) == PASSING


def test_a_losing_candidate_stays_kept_whatever_the_guard_says() -> None:
    losing = Decision(promote=False, reason="win rate 0.400")
    for verdict in (
        objective_verdict(comparison(0.9, 0.4), 0.05),
        objective_verdict(None, 0.05, "no objective set"),
    ):
        assert not guarded_decision(losing, verdict).promote
