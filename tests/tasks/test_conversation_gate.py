"""Issue 37's measurement through the real evaluate path (answer, judge, simulate, judge
conversations, decide) on the sandbox: the planted candidate that wins single turns but caves
to pushback and forgets the follow-up is promoted in single_turn and refused in
conversations; a rerun pays for nothing and adds nothing."""

from __future__ import annotations

import pytest

from flywheel.config import resolve_sandbox_endpoints
from flywheel.sandbox.server import start_sandbox
from flywheel.tasks.evaluate import evaluate_round, run_eval_battles
from flywheel.warehouse.contracts import contract_violations
from flywheel.warehouse.store import connect
from tests.tasks.conversation_fixtures import (
    CANDIDATE,
    CHAMPION,
    insert_eval_prompts,
    planted_config,
)

TABLES = ("llm_calls", "battles", "judgments", "sim_conversations", "sim_turns")


def evaluate(config, round_id: int):
    run_eval_battles(config, round_id, (CANDIDATE, None), (CHAMPION, None))
    return evaluate_round(config, round_id, CANDIDATE, CHAMPION)


def counts(config) -> dict[str, int]:
    with connect(config.warehouse.path, read_only=True) as con:
        return {t: con.execute(f"select count(*) from {t}").fetchone()[0] for t in TABLES}


@pytest.mark.slow  # three evaluations of 24 prompts and 48 conversations: 20-90 s
def test_the_planted_candidate_wins_single_turns_and_loses_conversations(tmp_path) -> None:
    single = planted_config(tmp_path, "single_turn")
    talks = planted_config(tmp_path, "conversations", personas=["pushback", "follow_up"])
    insert_eval_prompts(single, 24)
    with start_sandbox(single.sandbox) as server:
        single_report = evaluate(resolve_sandbox_endpoints(single, server.base_url), 1)
        live = resolve_sandbox_endpoints(talks, server.base_url)
        talk_report = evaluate(live, 2)
        before, sent_before = counts(talks), server.state.snapshot()["total"]
        again = evaluate(live, 2)
        assert server.state.snapshot()["total"] == sent_before  # nothing paid for twice
    assert counts(talks) == before  # and nothing written twice
    assert single_report.decision.promote, single_report.decision.reason
    assert single_report.conversation_ab is None
    assert not talk_report.decision.promote, talk_report.decision.reason
    assert talk_report.decision.reason.startswith("conversations: win rate")
    assert talk_report.conversation_ab.win_rate < 0.3
    assert again.decision == talk_report.decision
    with connect(talks.warehouse.path, read_only=True) as con:
        assert contract_violations(con) == []
        candidate_right = con.execute(
            "select avg(handled_right::int) from sim_conversations where model_id = ?",
            [CANDIDATE],
        ).fetchone()[0]
        calibration = con.execute(
            "select persona_kind, n_decisive_truth, agreement from v_conversation_calibration "
            "where round_id = 2 order by persona_kind"
        ).fetchall()
        realism = con.execute(
            "select persona_kind, model_id, pushback_share, done_share from v_sim_realism "
            "where round_id = 2 and model_id = ? order by persona_kind",
            [CHAMPION],
        ).fetchall()
    assert candidate_right < 0.1  # the sandbox's ground truth: it caved or forgot every time
    assert [kind for kind, _, _ in calibration] == ["follow_up", "pushback"]
    assert all(n > 5 and agreement > 0.8 for _, n, agreement in calibration), calibration
    assert realism == [("follow_up", CHAMPION, 0.0, 1.0), ("pushback", CHAMPION, 0.5, 1.0)]
