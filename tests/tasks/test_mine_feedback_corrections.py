"""A user's correction becomes a preference pair (tests/tasks/feedback_fixtures.py's c_fix: the
answer "7" corrected to "2 + 3 = 5."): the correction chosen over the answer it corrects, in the
answer's context, with its lineage, once per kind, exported by v_dpo_pairs / v_rm_pairs."""

from __future__ import annotations

from datetime import timedelta

from flywheel.config import Config
from flywheel.tasks.mine import mine_round
from flywheel.warehouse.contracts import contract_violations
from flywheel.warehouse.store import connect, connect_warehouse
from flywheel.warehouse.writes import insert_new
from tests.tasks.feedback_fixtures import (  # noqa: F401 (the fixture)
    CONVERSATIONS,
    DAY,
    FOLLOW_UP,
    QUESTION,
    add_logs,
    logged_feedback,
)
from tests.tasks.test_mine import prompt_row

CORRECTION_PAIRS = (
    "select pair_id, kind, round_id, chosen_conversation_id, chosen_turn_index, "
    "rejected_conversation_id, rejected_turn_index, chosen_feedback_ids, rejected_feedback_ids, "
    "chosen_model, rejected_model, origin from preference_pairs "
    "where chosen_source = 'correction' order by kind, chosen_conversation_id"
)
# a correction pair in the export: chosen and rejected point to the same logged answer
EXPORTED = (
    "select prompt, chosen, rejected, chosen_conversation_id, chosen_turn_index "
    "from {view} where chosen_conversation_id = rejected_conversation_id "
    "and chosen_turn_index = rejected_turn_index order by chosen_conversation_id"
)


def _rows(config: Config, query: str) -> list[tuple]:
    with connect(config.warehouse.path) as con:
        return con.execute(query).fetchall()


def _correction(text: str, minutes: int = 0) -> dict:
    """An explicit correction on the first answer (turn 1), written `minutes` after the day."""
    return {
        "turn_index": 1,
        "kind": "correction",
        "label": "negative",
        "correction": text,
        "created_at": DAY + timedelta(minutes=minutes),
    }


def _prompts_only(config: Config) -> Config:
    with connect_warehouse(config.warehouse) as con:
        insert_new(con, "prompts", [prompt_row("p_q")])
    return config


def test_a_corrected_answer_becomes_a_pair_with_the_correction_chosen(
    logged_feedback: Config,  # noqa: F811
) -> None:
    mine_round(logged_feedback, 1, "dpo")
    (pair,) = _rows(logged_feedback, CORRECTION_PAIRS)
    assert pair[1:] == (
        "dpo",
        1,
        "c_fix",
        1,
        "c_fix",
        1,
        ["f-c_fix-0"],
        ["f-c_fix-0"],
        None,  # a user wrote the chosen answer
        "v0",
        "feedback",
    )
    assert _rows(logged_feedback, EXPORTED.format(view="v_dpo_pairs")) == [
        (
            [{"role": "user", "content": QUESTION}],
            [{"role": "assistant", "content": "2 + 3 = 5."}],
            [{"role": "assistant", "content": "7"}],
            "c_fix",
            1,
        )
    ]
    with connect(logged_feedback.warehouse.path) as con:
        assert contract_violations(con) == []


def test_a_correction_pair_is_mined_once_per_kind(
    logged_feedback: Config,  # noqa: F811
) -> None:
    first = mine_round(logged_feedback, 1, "dpo").feedback
    again = mine_round(logged_feedback, 1, "dpo").feedback
    next_round = mine_round(logged_feedback, 2, "rm+rl").feedback
    assert first is not None and again is not None and next_round is not None
    assert first.n_added["dpo"] == 3 and again.n_added["dpo"] == 0
    assert next_round.n_added["dpo"] == 0 and next_round.n_added["rm"] == 3
    assert [
        (kind, round_id) for _, kind, round_id, *_ in _rows(logged_feedback, CORRECTION_PAIRS)
    ] == [
        ("dpo", 1),
        ("rm", 2),
    ]
    assert _rows(logged_feedback, EXPORTED.format(view="v_rm_pairs"))[0][1] == [
        {"role": "assistant", "content": "2 + 3 = 5."}
    ]


def test_a_later_answer_is_corrected_in_its_conversation(smoke_config: Config) -> None:
    config = _prompts_only(smoke_config)
    corrected_later = {
        "c_later": (
            "p_q",
            [("assistant", "5"), ("user", FOLLOW_UP), ("assistant", "11")],
            [_correction("2 x 5 = 10.") | {"turn_index": 3}],
        )
    }
    add_logs(config, corrected_later)
    mine_round(config, 1, "dpo")
    assert _rows(config, EXPORTED.format(view="v_dpo_pairs")) == [
        (
            [
                {"role": "user", "content": QUESTION},
                {"role": "assistant", "content": "5"},
                {"role": "user", "content": FOLLOW_UP},
            ],
            [{"role": "assistant", "content": "2 x 5 = 10."}],
            [{"role": "assistant", "content": "11"}],
            "c_later",
            3,
        )
    ]


def test_the_latest_correction_is_chosen_as_in_the_sft_target(smoke_config: Config) -> None:
    config = _prompts_only(smoke_config)
    twice = {
        "c_twice": (
            "p_q",
            [("assistant", "7")],
            [_correction("It is 5.", minutes=1), _correction("2 + 3 = 5.", minutes=9)],
        )
    }
    add_logs(config, twice)
    mine_round(config, 1, "dpo")
    chosen = _rows(config, EXPORTED.format(view="v_dpo_pairs"))[0][1]
    target = _rows(config, "select target_text from v_sft_data where origin = 'feedback'")
    assert chosen == [{"role": "assistant", "content": "2 + 3 = 5."}]
    assert target == [("2 + 3 = 5.",)]


def test_a_correction_equal_to_the_answer_makes_no_pair(smoke_config: Config) -> None:
    config = _prompts_only(smoke_config)
    add_logs(config, {"c_same": ("p_q", [("assistant", "5")], [_correction(" 5 ")])})
    report = mine_round(config, 1, "dpo").feedback
    assert report is not None and report.n_added == {"sft": 1, "dpo": 0}


def test_a_corrected_answer_still_meets_a_liked_answer_that_comes_later(
    smoke_config: Config,
) -> None:
    # day one holds only the corrected answer; day two's liked answer to the same prompt still
    # makes the same-context pair: the correction pair does not use the answer up
    config = _prompts_only(smoke_config)
    add_logs(config, {"c_fix": CONVERSATIONS["c_fix"]})
    day_one = mine_round(config, 1, "dpo").feedback
    day_two_up = {
        "c_day2_up": ("p_q", [("assistant", "5")], [{"turn_index": 1, "label": "positive"}])
    }
    add_logs(config, day_two_up, first_minute=100)
    day_two = mine_round(config, 2, "dpo").feedback
    assert day_one is not None and day_one.n_added["dpo"] == 1
    assert day_two is not None and day_two.n_added["dpo"] == 1
    assert _rows(
        config,
        "select round_id, chosen_source, chosen_conversation_id, rejected_conversation_id "
        "from preference_pairs order by round_id",
    ) == [(1, "correction", "c_fix", "c_fix"), (2, "feedback", "c_day2_up", "c_fix")]
