"""evaluation.combine: one decision from the single-turn and conversation A/Bs, both figures
in its reason; a mode that does not gate is reported, never decisive."""

from __future__ import annotations

import copy

from flywheel.config import parse_config
from flywheel.evaluators.abtest import ABResult
from flywheel.tasks.evaluate import combined_decision
from tests.flywheel.test_config_checks import SMOKE

SIMULATOR = {"name": "sim-user", "base_url": "sandbox", "model": "sandbox-user"}


def result(win_rate: float, ci_low: float) -> ABResult:
    return ABResult(40, 30, 0, 10, 0, 0, win_rate, ci_low, win_rate + 0.1, 50.0, 50.0, win_rate)


WINS, LOSES = result(0.75, 0.62), result(0.3, 0.2)


def evaluation(mode: str, combine: str | None = None):
    data = copy.deepcopy(SMOKE)
    data["student"]["endpoint"] = {"name": "student", "base_url": "sandbox", "model": "s-{version}"}
    data["sandbox"]["models"]["sandbox-user"] = {"role": "user"}
    settings = {"mode": mode, "conversations": {"simulator": SIMULATOR}}
    data["evaluation"] = (
        data.get("evaluation", {}) | settings | ({"combine": combine} if combine else {})
    )
    return parse_config(data).evaluation


def test_single_turn_alone_keeps_its_reason_unchanged() -> None:
    decision = combined_decision({"single_turn": WINS}, evaluation("single_turn"))
    assert decision.promote and decision.reason.startswith("win rate 0.750")


def test_both_must_pass_refuses_a_candidate_that_loses_conversations() -> None:
    decision = combined_decision({"single_turn": WINS, "conversations": LOSES}, evaluation("both"))
    assert not decision.promote
    assert "single turn: win rate 0.750" in decision.reason
    assert "conversations: win rate 0.300 [0.200, 0.400] over 40 conversations" in decision.reason


def test_conversations_only_gates_reports_single_turn_without_letting_it_decide() -> None:
    settings = evaluation("both", "conversations_only_gates")
    refused = combined_decision({"single_turn": WINS, "conversations": LOSES}, settings)
    promoted = combined_decision({"single_turn": LOSES, "conversations": WINS}, settings)
    assert not refused.promote and promoted.promote
    assert "single turn (reported, not gating): win rate 0.300" in promoted.reason


def test_a_kept_conversation_lead_counts_the_conversations_that_would_confirm_it() -> None:
    leads = result(0.55, 0.45)  # ahead, but not confirmed over 40 conversations
    decision = combined_decision({"single_turn": WINS, "conversations": leads}, evaluation("both"))
    assert not decision.promote
    assert decision.reason.endswith(
        "conversations to be confirmed (evaluation.conversations.n_conversations)"
    )
    assert "prompts.eval_size" not in decision.reason
