"""Mining users' feedback on literal logged conversations (tests/tasks/feedback_fixtures.py):
each rule gives exactly the expected rows, with their lineage, once; the views export them in
TRL's format beside battle rows."""

from __future__ import annotations

from pathlib import Path

from flywheel.config import Config, load_config
from flywheel.tasks.mine import mine_round, training_rows
from flywheel.warehouse.store import connect
from tests.tasks.feedback_fixtures import (  # noqa: F401 (the fixture)
    FOLLOW_UP,
    QUESTION,
    add_logged_feedback,
    add_logs,
    logged_feedback,
)
from tests.warehouse.test_lake import lake_config_path  # noqa: F401 (the fixture)


def _rows(config: Config, query: str) -> list[tuple]:
    with connect(config.warehouse.path) as con:
        return con.execute(query).fetchall()


def test_positive_answers_become_sft_examples_and_a_correction_its_target(
    logged_feedback: Config,  # noqa: F811
) -> None:
    report = mine_round(logged_feedback, 1, "sft")
    assert report.feedback is not None and report.feedback.n_added["sft"] == 4
    assert report.n_added == report.n_total == {"sft": 4, "dpo": 3}  # no battles this round
    assert _rows(
        logged_feedback,
        "select conversation_id, turn_index, target_source, target_text, origin, round_id "
        "from v_sft_data order by conversation_id",
    ) == [
        ("c_fix", 1, "correction", "2 + 3 = 5.", "feedback", 1),
        ("c_multi", 3, "feedback", "10", "feedback", 1),
        ("c_up", 1, "feedback", "5", "feedback", 1),
        ("c_wins", 1, "feedback", "5!", "feedback", 1),
    ]


def test_an_answer_in_a_conversation_is_trained_in_its_context(
    logged_feedback: Config,  # noqa: F811
) -> None:
    mine_round(logged_feedback, 1, "sft")
    rows = training_rows(logged_feedback, 1, "sft")
    assert {
        "messages": [
            {"role": "user", "content": QUESTION},
            {"role": "assistant", "content": "5"},
            {"role": "user", "content": FOLLOW_UP},
            {"role": "assistant", "content": "10"},
        ]
    } in rows
    assert {
        "messages": [
            {"role": "user", "content": QUESTION},
            {"role": "assistant", "content": "2 + 3 = 5."},
        ]
    } in rows
    assert len(rows) == 4


def test_every_mined_row_points_to_its_answer_and_feedback(
    logged_feedback: Config,  # noqa: F811
) -> None:
    mine_round(logged_feedback, 1, "kto")
    assert _rows(
        logged_feedback,
        "select conversation_id, turn_index, feedback_ids, origin, prompt_id, battle_id "
        "from sft_examples order by conversation_id",
    ) == [
        ("c_fix", 1, ["f-c_fix-0"], "feedback", "p_q", None),
        ("c_multi", 3, ["f-c_multi-0"], "feedback", "p_q", None),
        ("c_up", 1, ["f-c_up-0"], "feedback", "p_q", None),
        ("c_wins", 1, ["f-c_wins-0"], "feedback", "p_q", None),  # its implicit row lost
    ]
    assert _rows(
        logged_feedback,
        "select chosen_conversation_id, chosen_turn_index, chosen_feedback_ids, "
        "rejected_conversation_id, rejected_turn_index, rejected_feedback_ids, chosen_source "
        "from preference_pairs order by chosen_conversation_id",
    ) == [
        ("c_fix", 1, ["f-c_fix-0"], "c_fix", 1, ["f-c_fix-0"], "correction"),
        ("c_up", 1, ["f-c_up-0"], "c_down", 1, ["f-c_down-0"], "feedback"),
        ("c_wins", 1, ["f-c_wins-0"], "c_fix", 1, ["f-c_fix-0"], "feedback"),
    ]


def test_positive_and_negative_answers_become_kto_rows(
    logged_feedback: Config,  # noqa: F811
) -> None:
    report = mine_round(logged_feedback, 1, "kto")
    assert report.feedback is not None
    assert report.feedback.n_added == {"sft": 4, "dpo": 3, "kto": 5}
    assert _rows(
        logged_feedback,
        "select conversation_id, turn_index, label, source, n_battles, feedback_ids "
        "from kto_examples order by conversation_id",
    ) == [
        ("c_down", 1, False, "feedback", 0, ["f-c_down-0"]),
        ("c_fix", 1, False, "feedback", 0, ["f-c_fix-0"]),
        ("c_multi", 3, True, "feedback", 0, ["f-c_multi-0"]),
        ("c_up", 1, True, "feedback", 0, ["f-c_up-0"]),
        ("c_wins", 1, True, "feedback", 0, ["f-c_wins-0"]),
    ]
    assert {
        "prompt": [{"role": "user", "content": QUESTION}],
        "completion": [{"role": "assistant", "content": "6"}],
        "label": False,
    } in training_rows(logged_feedback, 1, "kto")


def test_a_liked_and_a_disliked_answer_to_the_same_prompt_make_a_dpo_pair(
    logged_feedback: Config,  # noqa: F811
) -> None:
    mine_round(logged_feedback, 1, "dpo")
    assert training_rows(logged_feedback, 1, "dpo") == [
        row
        for row in training_rows(logged_feedback, 1, "dpo")
        if row["prompt"] == [{"role": "user", "content": QUESTION}]
    ]
    assert sorted(
        (row["chosen"][0]["content"], row["rejected"][0]["content"])
        for row in training_rows(logged_feedback, 1, "dpo")
    ) == [("2 + 3 = 5.", "7"), ("5", "6"), ("5!", "7")]


def test_labels_count_explicit_first_and_leave_conflicts_and_unsure_labels_out(
    logged_feedback: Config,  # noqa: F811
) -> None:
    labels = mine_round(logged_feedback, 1, "sft").feedback.labels  # type: ignore[union-attr]
    assert (labels.n_positive, labels.n_negative, labels.n_corrected) == (3, 2, 1)
    assert (labels.n_conflict, labels.n_implicit) == (1, 1)


def test_an_implicit_label_counts_from_its_minimum_confidence(
    logged_feedback: Config,  # noqa: F811
) -> None:
    mining = logged_feedback.training.mining.model_copy(update={"feedback_min_confidence": 0.5})
    training = logged_feedback.training.model_copy(update={"mining": mining})
    trusting = logged_feedback.model_copy(update={"training": training})
    mine_round(trusting, 1, "kto")
    assert ("c_unsure", False) in _rows(trusting, "select conversation_id, label from kto_examples")


def test_a_rerun_and_the_next_round_mine_nothing_twice(
    logged_feedback: Config,  # noqa: F811
) -> None:
    first = mine_round(logged_feedback, 1, "kto").feedback
    again = mine_round(logged_feedback, 1, "kto").feedback
    next_round = mine_round(logged_feedback, 2, "kto").feedback
    assert first is not None and again is not None and next_round is not None
    assert sum(first.n_added.values()) == 12
    assert again.n_added == next_round.n_added == {"sft": 0, "dpo": 0, "kto": 0}
    counts = "select round_id, count(*) from {} group by round_id"
    for table in ("sft_examples", "preference_pairs", "kto_examples"):
        assert [r[0] for r in _rows(logged_feedback, counts.format(table))] == [1]


def test_the_next_days_logs_pair_only_answers_not_paired_yet(
    logged_feedback: Config,  # noqa: F811
) -> None:
    mine_round(logged_feedback, 1, "dpo")
    day_two = {
        "c_day2_down": ("p_q", [("assistant", "1")], [{"turn_index": 1, "label": "negative"}]),
        "c_day2_up": ("p_q", [("assistant", "five")], [{"turn_index": 1, "label": "positive"}]),
    }
    add_logs(logged_feedback, day_two, first_minute=100)
    report = mine_round(logged_feedback, 2, "dpo").feedback
    assert report is not None and report.n_added == {"sft": 1, "dpo": 1}
    assert _rows(
        logged_feedback,
        "select chosen_conversation_id, rejected_conversation_id from preference_pairs "
        "where round_id = 2",
    ) == [("c_day2_up", "c_day2_down")]


def test_feedback_rows_stand_beside_battle_rows_of_the_same_prompt(
    logged_feedback: Config,  # noqa: F811
) -> None:
    from tests.tasks.test_mine import battle_row

    with connect(logged_feedback.warehouse.path) as con:
        from flywheel.warehouse.writes import insert_new

        insert_new(
            con,
            "responses",
            [
                {
                    "response_id": f"r-{m}-p_q",
                    "prompt_id": "p_q",
                    "model_id": m,
                    "sample_idx": 0,
                    "round_id": 1,
                    "response_text": f"{m} says",
                }
                for m in ("v0", "ref:strong")
            ],
        )
        insert_new(con, "battles", [battle_row("p_q", "ref:strong", "loss", 2, 9)])
    mine_round(logged_feedback, 1, "sft")
    mine_round(logged_feedback, 1, "sft")
    assert _rows(
        logged_feedback,
        "select origin, count(*) from v_sft_data group by origin order by origin",
    ) == [("battle", 1), ("feedback", 4)]


def test_feedback_is_mined_on_a_ducklake_warehouse_too(lake_config_path: Path) -> None:  # noqa: F811
    config = add_logged_feedback(load_config(lake_config_path))
    report = mine_round(config, 1, "kto").feedback
    again = mine_round(config, 1, "kto").feedback
    assert report is not None and report.n_added == {"sft": 4, "dpo": 3, "kto": 5}
    assert again is not None and again.n_added == {"sft": 0, "dpo": 0, "kto": 0}
    assert len(training_rows(config, 1, "kto")) == 5


def test_an_answer_logged_again_inside_a_later_request_is_one_exchange(
    logged_feedback: Config,  # noqa: F811
) -> None:
    # a log with one record per request: c_up's exchange again inside the next request, where
    # the classifier read the user's next turn as a complaint; explicit wins on the exchange
    later_request = {
        "c_up_next": (
            "p_q",
            [("assistant", "5"), ("user", "Hm, why?"), ("assistant", "2 and 3 make 5")],
            [{"turn_index": 1, "source": "implicit", "category": "complaint", "confidence": 0.9}],
        )
    }
    add_logs(logged_feedback, later_request, first_minute=50)
    mine_round(logged_feedback, 1, "kto")
    assert _rows(
        logged_feedback,
        "select conversation_id, turn_index, label, feedback_ids from kto_examples "
        "where conversation_id like 'c_up%'",
    ) == [("c_up", 1, True, ["f-c_up-0"])]
