"""Combining verdicts: a judge panel's verdicts into one game's, a battle's two games into its
outcome, and the verifier judge that decides a battle by the skill checker instead.

Every battle is judged in both orders (game AB shows model A first, game BA shows model B
first); `combine_games` un-swaps the positions and combines the two games into a battle.
With a judge panel, `aggregate_verdicts` first makes one verdict of a game's several.

Pure: standard library only (and evaluators.skills for the verifier judge).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

from flywheel.evaluators.protocols.verdict import Verdict, Winner, unparsed
from flywheel.evaluators.skills import check_answer

Outcome = Literal["win", "loss", "tie", "inconsistent", "unparsed"]
PanelAggregate = Literal["majority", "mean"]

VERIFIER_SCORE_RIGHT, VERIFIER_SCORE_WRONG = 9.0, 2.0


def _mean_of(values: list[float]) -> float:
    return sum(values) / len(values)


def aggregate_verdicts(verdicts: Sequence[Verdict], how: PanelAggregate = "majority") -> Verdict:
    """One game's verdict from a judge panel's verdicts on it (one verdict: itself).

    - Fewer than half of the verdicts parsed: unparsed (the panel did not answer).
    - mean: when every parsed verdict kept its scores, the mean score per position, and the
      higher mean wins (equal means: tie). Otherwise as majority.
    - majority: the winner more than half of the parsed verdicts name; its scores are the
      means over those verdicts that kept scores, its strength the mean of theirs (None if
      one has none). No such winner: a tie without scores ("panel split").
    """
    if len(verdicts) == 1:
        return verdicts[0]
    parsed = [v for v in verdicts if v.parse_ok]
    if 2 * len(parsed) < len(verdicts):
        return unparsed(
            f"panel: {len(verdicts) - len(parsed)} of {len(verdicts)} verdicts unparsed"
        )
    scored = [v for v in parsed if v.score_first is not None and v.score_second is not None]
    if how == "mean" and scored and len(scored) == len(parsed):
        first = _mean_of([v.score_first for v in scored])  # type: ignore[misc]
        second = _mean_of([v.score_second for v in scored])  # type: ignore[misc]
        winner: Winner = "first" if first > second else "second" if second > first else "tie"
        return Verdict(True, winner, first, second, None)
    counts = {w: sum(v.winner == w for v in parsed) for w in ("first", "second", "tie")}
    top = max(counts, key=lambda w: counts[w])
    if 2 * counts[top] <= len(parsed):
        return Verdict(True, "tie", None, None, "panel split: no winner named by a majority", 0)
    agreeing = [v for v in parsed if v.winner == top]
    kept = [v for v in agreeing if v.score_first is not None and v.score_second is not None]
    first_score = _mean_of([v.score_first for v in kept]) if kept else None  # type: ignore[misc]
    second_score = _mean_of([v.score_second for v in kept]) if kept else None  # type: ignore[misc]
    strengths = [v.strength for v in agreeing]
    strength = None if None in strengths else _mean_of(strengths)  # type: ignore[arg-type]
    error = None if kept else "scores missing: no panel judge in the majority kept scores"
    return Verdict(True, top, first_score, second_score, error, strength)  # type: ignore[arg-type]


@dataclass(frozen=True)
class BattleOutcome:
    """One battle (both games combined), from model A's side, with mean 1-10 scores."""

    outcome: Outcome
    score_a: float | None
    score_b: float | None
    score_gap: float | None
    label_strength: float | None = None  # mean of both games' label strengths, where given


def _winner_for_a(winner: Winner | None, a_shown_first: bool) -> Literal["a", "b", "tie"] | None:
    if winner is None or winner == "tie":
        return winner
    return "a" if (winner == "first") == a_shown_first else "b"


def _mean(values: list[float | None]) -> float | None:
    present = [v for v in values if v is not None]
    return sum(present) / len(present) if present else None


def combine_games(ab: Verdict, ba: Verdict) -> BattleOutcome:
    """Combine game AB (model A shown first) and game BA (model B shown first).

    - unparsed: either game has parse_ok False (no scores either).
    - win / loss / tie: both games name A, both name B, both say tie.
    - inconsistent: one game names A and the other B (position decided it).
    - a win in one order and a tie in the other is a tie: a win must survive the swap, as
      the judge's position bias alone can turn a tie into a win for the answer shown first,
      and mining would then learn from pairs the judge does not really separate.
    Scores are un-swapped and averaged over the games that kept their scores (None if
    neither did); score_gap = |score_a - score_b|. label_strength (a win or loss whose two
    games both gave a strength): their mean, so `A>>B` twice is 2 and `A>>B` with `A>B` is
    1.5; a tie's is 0; None when a game gave none.
    """
    if not (ab.parse_ok and ba.parse_ok):
        return BattleOutcome("unparsed", None, None, None)
    score_a = _mean([ab.score_first, ba.score_second])
    score_b = _mean([ab.score_second, ba.score_first])
    gap = abs(score_a - score_b) if score_a is not None and score_b is not None else None
    winners = {_winner_for_a(ab.winner, True), _winner_for_a(ba.winner, False)}
    if winners == {"a", "b"}:
        outcome: Outcome = "inconsistent"
    elif "a" in winners and "b" not in winners:
        outcome = "win" if winners == {"a"} else "tie"
    elif "b" in winners:
        outcome = "loss" if winners == {"b"} else "tie"
    else:
        outcome = "tie"
    strengths = [ab.strength, ba.strength]
    strength = None
    if outcome in ("win", "loss", "tie") and None not in strengths:
        strength = 0.0 if outcome == "tie" else sum(strengths) / 2  # type: ignore[arg-type]
    return BattleOutcome(outcome, score_a, score_b, gap, strength)


def verify_pair(question: str, answer_a: str, answer_b: str) -> BattleOutcome | None:
    """The verifier judge: the skill checker decides (right 9, wrong 2); None if uncheckable."""
    right_a, right_b = check_answer(question, answer_a), check_answer(question, answer_b)
    if right_a is None or right_b is None:
        return None
    score_a = VERIFIER_SCORE_RIGHT if right_a else VERIFIER_SCORE_WRONG
    score_b = VERIFIER_SCORE_RIGHT if right_b else VERIFIER_SCORE_WRONG
    outcome: Outcome = "tie" if right_a == right_b else "win" if right_a else "loss"
    return BattleOutcome(outcome, score_a, score_b, abs(score_a - score_b))
