"""v_judge_calibration on literal battles: checker agreement, position consistency, panel."""

from __future__ import annotations

from pathlib import Path

from flywheel.warehouse.store import connect
from flywheel.warehouse.writes import insert_new

# battle -> (judge's outcome, verdict of game AB, of game BA, the verifier's verdict)
LITERAL = {
    "b_agree": ("win", "first", "second", "first"),  # A right; the judge says A, both orders
    "b_oppose": ("loss", "second", "first", "first"),  # A right; the judge says B, both orders
    "b_position": ("inconsistent", "first", "first", "second"),  # the shown-first answer won
    "b_both_right": ("tie", "tie", "tie", "tie"),  # not counted for calibration
}


def write_literal_battles(con) -> None:
    battles, judgments = [], []
    for battle_id, (outcome, ab, ba, verifier) in LITERAL.items():
        battles.append(
            {
                "battle_id": battle_id,
                "round_id": 1,
                "prompt_id": f"p-{battle_id}",
                "purpose": "train",
                "model_a": "v0",
                "model_b": "ref:strong",
                "response_a_id": f"ra-{battle_id}",
                "response_b_id": f"rb-{battle_id}",
                "judge": "judge",
                "outcome": outcome,
            }
        )
        for judge, order, verdict in (
            ("judge", "AB", ab),
            ("judge", "BA", ba),
            ("verifier", "AB", verifier),
        ):
            judgments.append(
                {
                    "judgment_id": f"{battle_id}-{judge}-{order}",
                    "battle_id": battle_id,
                    "round_id": 1,
                    "game_order": order,
                    "judge": judge,
                    "prompt_version": "v1" if judge == "judge" else "verifier",
                    "verdict": verdict,
                    "parse_ok": True,
                }
            )
    # a second panel judge on game AB of two battles: agrees on one, not on the other
    for battle_id, verdict in (("b_agree", "first"), ("b_oppose", "first")):
        judgments.append(
            {
                "judgment_id": f"{battle_id}-judge-2-AB",
                "battle_id": battle_id,
                "round_id": 1,
                "game_order": "AB",
                "judge": "judge-2",
                "prompt_version": "v1",
                "verdict": verdict,
                "parse_ok": True,
            }
        )
    insert_new(con, "battles", battles)
    insert_new(con, "judgments", judgments)


def test_the_judge_is_calibrated_where_exactly_one_answer_is_right(tmp_path: Path) -> None:
    with connect(tmp_path / "flywheel.duckdb") as con:
        write_literal_battles(con)
        row = con.execute(
            "select n_checker_decisive, n_judge_agrees, n_judge_opposes, checker_agreement, "
            "n_both_parsed, position_consistency, n_panel_games, panel_agreement "
            "from v_judge_calibration where round_id = 1 and purpose = 'train'"
        ).fetchone()
    assert row == (3, 1, 1, 1 / 3, 4, 0.75, 2, 0.5)


def test_conversation_battles_are_calibrated_against_the_truth_and_real_users(tmp_path) -> None:
    from tests.warehouse.test_conversation_views import write_rows

    with connect(tmp_path / "w.duckdb") as con:
        write_rows(con)
        row = con.execute(
            "select n_checker_decisive, n_judge_agrees, checker_agreement, n_simulator_truth, "
            "simulator_truth_agreement, n_simulator_feedback, simulator_feedback_agreement, "
            "n_judge_feedback, judge_feedback_agreement from v_judge_calibration "
            "where purpose = 'eval_conversation'"
        ).fetchone()
    assert row == (2, 1, 0.5, 4, 0.75, 3, 1.0, 1, 1.0)
