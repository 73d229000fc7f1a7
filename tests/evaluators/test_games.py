"""Combining verdicts: a battle's two games, a judge panel's verdicts, the verifier judge."""

from __future__ import annotations

import pytest

from flywheel.evaluators.games import BattleOutcome, aggregate_verdicts, combine_games, verify_pair
from flywheel.evaluators.protocols.verdict import Verdict

QUESTION = "What is 37 + 48?"


def _v(winner: str | None, first: float | None = None, second: float | None = None) -> Verdict:
    return Verdict(winner is not None, winner, first, second, None if winner else "no verdict")  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("ab", "ba", "expected"),
    [
        # A shown first wins game AB; in game BA, A is shown second and wins again
        (_v("first", 9, 2), _v("second", 3, 8), BattleOutcome("win", 8.5, 2.5, 6.0)),
        (_v("second", 2, 9), _v("first", 9, 2), BattleOutcome("loss", 2.0, 9.0, 7.0)),
        (_v("tie", 6, 6), _v("tie", 7, 7), BattleOutcome("tie", 6.5, 6.5, 0.0)),
        # position decided it: each game picks the answer shown first
        (_v("first", 8, 5), _v("first", 8, 5), BattleOutcome("inconsistent", 6.5, 6.5, 0.0)),
        # a win in one order and a tie in the other is a tie
        (_v("first", 8, 6), _v("tie", 7, 7), BattleOutcome("tie", 7.5, 6.5, 1.0)),
        (_v("tie", 6, 6), _v("first", 8, 5), BattleOutcome("tie", 5.5, 7.0, 1.5)),
        # scores dropped in one game: the other game's scores are used
        (_v("first", None, None), _v("second", 2, 9), BattleOutcome("win", 9.0, 2.0, 7.0)),
        (_v("first"), _v("second"), BattleOutcome("win", None, None, None)),
        (_v(None), _v("second", 2, 9), BattleOutcome("unparsed", None, None, None)),
        (_v("first", 9, 2), _v(None), BattleOutcome("unparsed", None, None, None)),
    ],
)
def test_combine_games_literal_cases(ab: Verdict, ba: Verdict, expected: BattleOutcome) -> None:
    assert combine_games(ab, ba) == expected


def test_verifier_judge_uses_the_skill_checker() -> None:
    assert verify_pair(QUESTION, "Answer: 85", "Answer: 84") == BattleOutcome("win", 9.0, 2.0, 7.0)
    assert verify_pair(QUESTION, "Answer: 1", "so\nAnswer: 85") == BattleOutcome(
        "loss", 2.0, 9.0, 7.0
    )
    assert verify_pair(QUESTION, "Answer: 85", "Answer: 85") == BattleOutcome("tie", 9.0, 9.0, 0.0)
    assert verify_pair(QUESTION, "Answer: 1", "Answer: 2") == BattleOutcome("tie", 2.0, 2.0, 0.0)
    assert verify_pair("Write a poem.", "roses", "violets") is None


def test_label_strength_of_a_battle_is_the_mean_of_its_games() -> None:
    strong_a = Verdict(True, "first", None, None, None, 2)
    slight_a_second = Verdict(True, "second", None, None, None, 1)  # game BA: A shown second
    assert combine_games(strong_a, slight_a_second) == BattleOutcome("win", None, None, None, 1.5)
    tie = Verdict(True, "tie", None, None, None, 0)
    assert combine_games(strong_a, tie).label_strength == 0.0  # a tie
    assert combine_games(_v("first", 9, 2), _v("second", 2, 9)).label_strength is None


def test_a_panel_majority_names_the_winner_and_a_split_is_a_tie() -> None:
    a9, a8, b7 = _v("first", 9, 2), _v("first", 8, 4), _v("second", 3, 7)
    assert aggregate_verdicts([a9, a8, b7]) == Verdict(True, "first", 8.5, 3.0, None, None)
    split = aggregate_verdicts([a9, b7])
    assert (split.winner, split.score_first, split.error) == (
        "tie",
        None,
        "panel split: no winner named by a majority",
    )
    assert aggregate_verdicts([a9]) is a9


def test_a_panel_mean_decides_by_the_mean_scores_and_needs_every_score() -> None:
    a9, b7 = _v("first", 9, 2), _v("second", 4, 7)
    assert aggregate_verdicts([a9, b7], "mean") == Verdict(True, "first", 6.5, 4.5, None)
    no_scores = _v("second")
    assert aggregate_verdicts([a9, no_scores], "mean").winner == "tie"  # majority: a split


def test_a_panel_that_mostly_did_not_answer_is_unparsed() -> None:
    verdict = aggregate_verdicts([_v("first", 9, 2), _v(None), _v(None)])
    assert verdict.parse_ok is False and "2 of 3 verdicts unparsed" in (verdict.error or "")
