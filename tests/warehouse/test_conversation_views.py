"""The conversation views (warehouse/views/conversations.sql) on literal rows: the simulated
users' and the logged users' verdicts, realism side by side, calibration against the sandbox's
ground truth and the real users' feedback per persona kind, and what each part cost.

Round 1 has two openings, each talked through by the candidate v1 (served as student-v1) and
the champion v0 (served as student-v0):

| opening | kind       | v1: ends / truth   | v0: ends / truth | judge | logged verdicts                     |
| ---     | ---        | ---                | ---              | ---   | ---                                 |
| p1      | correction | gave_up / wrong    | done / right     | loss  | student-v0 positive, student-v1 negative |
| p2      | plain      | done / wrong       | done / right     | win   | v0 positive, student-v1 unlabelled   |
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

import pytest

from flywheel.warehouse.store import connect
from flywheel.warehouse.writes import insert_new

ADDED_AT = datetime(2026, 12, 1, 2, 0)
SIM = [  # conversation, kind, prompt, model, served, user turns, pushbacks, ended_by, right
    ("c1a", "correction", "p1", "v1", "student-v1", 3, 1, "gave_up", False),
    ("c1b", "correction", "p1", "v0", "student-v0", 3, 1, "done", True),
    ("c2a", "plain", "p2", "v1", "student-v1", 2, 0, "done", False),
    ("c2b", "plain", "p2", "v0", "student-v0", 2, 0, "done", True),
]
LOGS = {  # conversation: (model, prompt, roles, {answer turn: [(source, label)]})
    "L1": ("student-v0", "p1", "uaua", {3: [("explicit", "positive")]}),
    "L1-a0": ("student-v0", "p1", "ua", {1: [("explicit", "negative")]}),  # L1's first record
    "L2": ("student-v1", "p1", "ua", {1: [("explicit", "negative")]}),
    "L3": ("v0", "p2", "ua", {1: [("explicit", "positive")]}),
    "L4": ("student-v1", "p2", "ua", {}),
    "L5": ("other", "p9", "uau", {1: [("implicit", "negative"), ("explicit", "positive")]}),
    "L6": ("other", "p8", "ua", {1: [("explicit", "negative"), ("explicit", "positive")]}),
}  # fmt: skip
CALLS = [  # call_id, endpoint, round, error, tokens (prompt, completion), cost
    ("s1", "sim-user", 1, None, (10, 5), 0.01),
    ("s2", "sim-user", 1, None, (12, 4), 0.01),
    ("s-failed", "sim-user", 1, "APIError: down", (None, None), None),
    ("m1", "student", 1, None, (3, 4), 0.0),
    ("g1", "judge", 1, None, (100, 20), 0.1),
    ("g2", "judge", 0, None, (90, 20), 0.1),  # paid in round 0: the cache answered round 1
]


def write_rows(con) -> None:
    insert_new(
        con,
        "sim_conversations",
        [
            {
                "conversation_id": cid,
                "round_id": 1,
                "persona_id": f"persona-{prompt}",
                "persona_kind": kind,
                "prompt_id": prompt,
                "model_id": model,
                "served_model": served,
                "n_user_turns": n_user,
                "n_pushbacks": n_push,
                "ended_by": ended,
                "simulator": "sim-user",
                "simulator_prompt_version": "sim-user-v1",
                "handled_right": right,
            }
            for cid, kind, prompt, model, served, n_user, n_push, ended, right in SIM
        ],
    )
    turns = [  # c1a: opening, first answer, correction, fixed answer, gives up
        ("user", None),
        ("assistant", None),
        ("user", "s1"),
        ("assistant", "m1"),
        ("user", "s2"),
    ]
    insert_new(
        con,
        "sim_turns",
        [
            {"conversation_id": "c1a", "turn_index": i, "role": role, "text": "t", "call_id": c}
            for i, (role, c) in enumerate(turns)
        ],
    )
    insert_new(
        con,
        "battles",
        [
            {
                "battle_id": f"b-{prompt}",
                "round_id": 1,
                "prompt_id": prompt,
                "purpose": "eval_conversation",
                "model_a": "v1",
                "model_b": "v0",
                "response_a_id": "ra",
                "response_b_id": "rb",
                "judge": "judge",
                "outcome": outcome,
            }
            for prompt, outcome in (("p1", "loss"), ("p2", "win"))
        ],
    )
    insert_new(
        con,
        "judgments",
        [
            {
                "judgment_id": f"j-{order}",
                "battle_id": "b-p1",
                "round_id": 1,
                "game_order": order,
                "judge": "judge",
                "prompt_version": "conv-five-labels-v1",
                "verdict": "second",
                "parse_ok": True,
                "call_id": call_id,
            }
            for order, call_id in (("AB", "g1"), ("BA", "g2"))
        ],
    )
    insert_new(
        con,
        "llm_calls",
        [
            {
                "call_id": call_id,
                "endpoint": endpoint,
                "model": endpoint,
                "request_json": "{}",
                "round_id": round_id,
                "error": error,
                "prompt_tokens": tokens[0],
                "completion_tokens": tokens[1],
                "cost_usd": cost,
            }
            for call_id, endpoint, round_id, error, tokens, cost in CALLS
        ],
    )
    write_logs(con)


def write_logs(con) -> None:
    conversations, turns, feedback = [], [], []
    for i, (cid, (model, prompt, roles, labels)) in enumerate(LOGS.items()):
        conversations.append(
            {
                "conversation_id": cid,
                "source": "literal",
                "log_format": "messages",
                "model": model,
                "n_turns": len(roles),
                "prompt_id": prompt,
                "file_sha256": "f",
                "line_no": i,
                "added_at": ADDED_AT,
            }
        )
        turns += [
            {
                "conversation_id": cid,
                "turn_index": t,
                "role": "user" if r == "u" else "assistant",
                "content": "x",
            }
            for t, r in enumerate(roles)
        ]
        feedback += [
            {
                "feedback_id": f"{cid}-{turn}-{source}-{label}",
                "conversation_id": cid,
                "turn_index": turn,
                "source": source,
                "kind": "thumb" if source == "explicit" else "classified",
                "label": label,
                "created_at": ADDED_AT,
            }
            for turn, given in labels.items()
            for source, label in given
        ]
    insert_new(con, "log_conversations", conversations)
    insert_new(con, "log_turns", turns)
    insert_new(con, "feedback", feedback)


@pytest.fixture
def con(tmp_path: Path):
    with connect(tmp_path / "views.duckdb") as con:
        write_rows(con)
        yield con


def test_a_logged_verdict_is_its_latest_labelled_answer_and_a_prefix_record_counts_on_its_whole(
    con,
) -> None:
    rows = con.execute(
        "select conversation_id, model, prompt_id, n_user_turns, pushed_back, verdict "
        "from v_log_conversation_verdicts"
    ).fetchall()
    assert rows == [
        (
            "L1",
            "student-v0",
            "p1",
            2,
            True,
            "positive",
        ),  # corrected (L1-a0's thumb), then satisfied
        ("L2", "student-v1", "p1", 1, False, "negative"),  # left after a negative answer
        ("L3", "v0", "p2", 1, False, "positive"),
        ("L4", "student-v1", "p2", 1, False, None),  # no feedback: no verdict
        ("L5", "other", "p9", 2, False, "positive"),  # the explicit thumb wins
        ("L6", "other", "p8", 1, False, None),  # an up and a down: no label
    ]


def test_calibration_per_persona_kind_against_the_truth_and_the_real_users(con) -> None:
    rows = con.execute("select * from v_conversation_calibration").fetchall()
    assert rows == [
        # judge vs truth 1/1; user vs truth 2/2; user vs logs 2/2; judge vs logs 1/1
        (1, "correction", 1, 1, 1.0, 2, 2, 1.0, 2, 2, 1.0, 1, 1, 1.0),
        # judge vs truth 0/1 (it preferred the wrong answer); the plain user ends satisfied
        # with a wrong answer too (1/2); v0's logged verdict agrees (1/1); v1 has no labelled
        # log on p2, so no real preference
        (1, "plain", 1, 0, 0.0, 2, 1, 0.5, 1, 1, 1.0, 0, 0, None),
    ]


def test_realism_sets_the_simulated_users_beside_the_logged_users_of_the_same_model(con) -> None:
    rows = con.execute("select * from v_realism_vs_logs").fetchall()
    assert rows == [
        # simulated: n, turns, pushed back, gave up, satisfied; logs of student-v0 and v0
        (1, "v0", 2, 2.5, 0.5, 0.0, 1.0, "same model", 2, 2, 1.5, 0.5, 0.0, 1.0),
        # logs of student-v1: one of two with a verdict (negative, without going on)
        (1, "v1", 2, 2.5, 0.5, 0.5, 0.5, "same model", 2, 1, 1.0, 0.0, 1.0, 0.0),
    ]


def test_realism_falls_back_to_every_logged_model(con) -> None:
    con.execute(  # each its own model: no record is another's prefix any more
        "update log_conversations set model = 'elsewhere-' || conversation_id "
        "where model <> 'other'"
    )
    rows = con.execute(
        "select model_id, log_scope, log_n_conversations, log_n_with_verdict, "
        "log_satisfied_share from v_realism_vs_logs"
    ).fetchall()
    assert rows == [("v0", "all models", 7, 5, 0.6), ("v1", "all models", 7, 5, 0.6)]


def test_costs_count_each_part_and_only_the_calls_paid_this_round(con) -> None:
    rows = con.execute("select * from v_conversation_costs").fetchall()
    assert rows == [
        (1, "conversation judge", 2, 1, 0, 120, pytest.approx(0.1)),  # g2 was paid in round 0
        (1, "model", 1, 1, 0, 7, 0.0),
        (1, "simulated user", 2, 3, 1, 31, pytest.approx(0.02)),  # its failed call included
    ]
