"""Storing verdicts: each judged game's `judgments` row, and each battle's `battles` row as
soon as all of its games are in (combined from model A's side), with the verifier's judgment
of checkable prompts.

- An unparseable reply is stored with its raw text (parse_ok false, the reason in `error`);
  its battle is `unparsed`, which mining and ratings exclude.
- A game whose call failed after its retries is stored with raw_text null and the cause in
  `error`; its battle is `error` (judged again on a later run, its rows replaced).
- With `judge.use_verifier`, battles on checkable prompts also get a verifier judgment (judge
  `verifier`, game AB) from the skill checker; the battle's outcome stays the model judge's.
"""

from __future__ import annotations

import json
from collections import Counter
from typing import Any

from flywheel.config import Config
from flywheel.evaluators.games import BattleOutcome, aggregate_verdicts, combine_games, verify_pair
from flywheel.evaluators.protocols.verdict import Verdict
from flywheel.llm.client import CallResult
from flywheel.tasks.battle_plan import BattlePlan, games_per_battle, judgment_id_for
from flywheel.tasks.judge_calls import GAME_ORDERS, Game
from flywheel.tasks.judge_report import JudgeReport
from flywheel.warehouse.store import now_utc
from flywheel.warehouse.writer import RowWriter

VERIFIER_JUDGE = "verifier"


def judgment_row(
    config: Config,
    round_id: int,
    game: Game,
    result: CallResult,
    verdict: Verdict | None,
) -> dict[str, Any]:
    """The `judgments` row of one game: the raw reply and its parse, or the call's error."""
    return {
        "judgment_id": game.judgment_id,
        "battle_id": game.battle_id,
        "round_id": round_id,
        "game_order": game.order,
        "judge": (game.judge or config.judge).name,
        "prompt_version": config.judge.prompt_version,
        "raw_text": result.text if result.ok else None,
        "score_first": verdict.score_first if verdict else None,
        "score_second": verdict.score_second if verdict else None,
        "verdict": verdict.winner if verdict else None,
        "label_strength": verdict.strength if verdict else None,
        "parse_ok": bool(verdict and verdict.parse_ok),
        "call_id": result.call_id,
        "error": result.error if not result.ok else (verdict.error if verdict else None),
        "context_turns_cut": game.n_turns_cut,
        "created_at": now_utc(),
    }


def battle_row(
    config: Config, round_id: int, purpose: str, plan: BattlePlan, outcome: BattleOutcome | None
) -> dict[str, Any]:
    """The `battles` row; `outcome` None means a game's call failed (outcome `error`)."""
    return {
        "battle_id": plan.battle_id,
        "round_id": round_id,
        "prompt_id": plan.prompt_id,
        "purpose": purpose,
        "model_a": plan.model_a,
        "model_b": plan.model_b,
        "response_a_id": plan.response_a_id,
        "response_b_id": plan.response_b_id,
        "judge": config.judge.name,
        "score_a": outcome.score_a if outcome else None,
        "score_b": outcome.score_b if outcome else None,
        "score_gap": outcome.score_gap if outcome else None,
        "label_strength": outcome.label_strength if outcome else None,
        "outcome": outcome.outcome if outcome else "error",
        "created_at": now_utc(),
    }


def verifier_row(round_id: int, plan: BattlePlan, outcome: BattleOutcome) -> dict[str, Any]:
    """The verifier's judgment of a battle, stored as game AB of judge `verifier`."""
    winner = {"win": "first", "loss": "second"}.get(outcome.outcome, "tie")
    return {
        "judgment_id": judgment_id_for(plan.battle_id, "AB", VERIFIER_JUDGE, VERIFIER_JUDGE),
        "battle_id": plan.battle_id,
        "round_id": round_id,
        "game_order": "AB",
        "judge": VERIFIER_JUDGE,
        "prompt_version": VERIFIER_JUDGE,
        "raw_text": json.dumps({"outcome": outcome.outcome}),
        "score_first": outcome.score_a,
        "score_second": outcome.score_b,
        "verdict": winner,
        "parse_ok": True,
        "call_id": None,
        "error": None,
        "created_at": now_utc(),
    }


class BattleCloser:
    """Writes a battle as soon as all of its games are in; counts what it saw."""

    def __init__(
        self, config: Config, round_id: int, purpose: str, writer: RowWriter, report: JudgeReport
    ) -> None:
        self.config, self.round_id, self.purpose = config, round_id, purpose
        self.writer, self.report = writer, report
        self.outcomes: Counter[str] = Counter(report.outcomes)

    def game_done(
        self, plan: BattlePlan, key: tuple[str, str], verdict: Verdict | None, error: str | None
    ) -> None:
        plan.games[key] = verdict
        if error is not None:
            plan.game_errors[key] = error
        if len(plan.games) == games_per_battle(self.config):
            self.close(plan)

    def close(self, plan: BattlePlan) -> None:
        ab, ba = (self.game_verdict(plan, order) for order in GAME_ORDERS)
        outcome = combine_games(ab, ba) if ab is not None and ba is not None else None
        self.writer.add(
            "battles", battle_row(self.config, self.round_id, self.purpose, plan, outcome)
        )
        self.report.n_battles_written += 1
        self.outcomes[outcome.outcome if outcome else "error"] += 1
        if outcome is None or not self.config.judge.use_verifier:
            return
        verified = verify_pair(plan.question, plan.answer_a, plan.answer_b)
        if verified is None:
            return
        self.writer.add("judgments", verifier_row(self.round_id, plan, verified))
        self.report.n_verified += 1
        self.report.n_verifier_agree += int(verified.outcome == outcome.outcome)
        if verified.outcome in ("win", "loss"):  # exactly one answer is right: calibration
            self.report.n_checker_decisive += 1
            self.report.n_checker_agree += int(verified.outcome == outcome.outcome)

    def game_verdict(self, plan: BattlePlan, order: str) -> Verdict | None:
        """The game's verdict: the judge's, or the panel's aggregate; None if a call failed."""
        judge = self.config.judge
        verdicts = [plan.games[(order, member.name)] for member in judge.members]
        if any(v is None for v in verdicts):
            return None
        return aggregate_verdicts(verdicts, judge.panel_aggregate)  # type: ignore[arg-type]
