"""A round's state message says what was decided, with the eval set's figures as round-metrics
writes them."""

from __future__ import annotations

import dataclasses

from flywheel.evaluators.abtest import ABResult, Decision, JudgeAudit
from flywheel.flows.round_outcome import decision_message
from flywheel.tasks.evaluate import EvaluationReport
from flywheel.tasks.promote import PromotionDecision

AB = ABResult(
    n=393,
    wins=71,
    ties=304,
    losses=18,
    n_inconsistent=0,
    n_excluded=0,
    win_rate=0.63414,
    ci_low=0.61094,
    ci_high=0.6571,
    lc_win_rate=0.6,
    mean_len_candidate=100.0,
    mean_len_champion=90.0,
)
EVALUATION = EvaluationReport(
    evaluation_id="e",
    ab=AB,
    decision=Decision(promote=True, reason="win rate 0.63 [0.61, 0.66] ..."),
    audit=JudgeAudit(None, None, None, 0, 0),
    ratings=[],
    sandbox_accuracy_candidate=None,
    sandbox_accuracy_champion=None,
)


def test_a_promoted_rounds_message_names_the_new_champion_and_the_eval_figures() -> None:
    decision = PromotionDecision(2, True, "r2-dpo", "win rate 0.63 [0.61, 0.66] ...")
    assert decision_message(2, decision, "r1-sft", EVALUATION) == (
        "round 2 promoted r2-dpo (eval set: win rate 0.634 [0.611, 0.657], W/T/L 71/304/18)"
    )


def test_a_round_without_an_ab_keeps_the_champion_and_says_why() -> None:
    decision = PromotionDecision(3, False, "r1-sft", "stage skipped: 2 mined examples; kept")
    assert decision_message(3, decision, "r1-sft", None) == (
        "round 3 kept r1-sft: stage skipped: 2 mined examples; kept"
    )


def test_a_candidate_refused_by_a_guard_says_which_guard_and_why() -> None:
    refusal = (
        "refused on the objective set: accuracy 0.120 below the champion's (limit 0.050, "
        "evaluation.objective_max_drop)"
    )
    refused = dataclasses.replace(EVALUATION, refusals=(refusal,))
    decision = PromotionDecision(2, False, "r1-sft", "...")
    assert decision_message(2, decision, "r1-sft", refused) == (
        "round 2 kept r1-sft (eval set: win rate 0.634 [0.611, 0.657], W/T/L 71/304/18); " + refusal
    )
