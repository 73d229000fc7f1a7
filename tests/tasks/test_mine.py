"""Mining on literal battles gives exactly the expected rows."""

from __future__ import annotations

import json

import pytest

from flywheel.config import Config
from flywheel.tasks.mine import mine_round, mining_rules, training_rows
from flywheel.warehouse.store import connect
from flywheel.warehouse.writes import insert_new
from tests.warehouse.literal_rows import ADDED_AT

REFS = ("ref:mixed", "ref:strong")


def prompt_row(prompt_id: str, split: str = "pool", status: str = "active") -> dict:
    messages = [{"role": "user", "content": f"question {prompt_id}"}]
    return {
        "prompt_id": prompt_id,
        "messages": json.dumps(messages),
        "prompt_text": messages[0]["content"],
        "source": "literal",
        "category": "arithmetic",
        "split": split,
        "slice_id": 1,
        "status": status,
        "n_chars": 10,
        "added_at": ADDED_AT,
    }


def battle_row(
    prompt_id: str, ref: str, outcome: str, score_a: float, score_b: float, round_id: int = 1
) -> dict:
    return {
        "battle_id": f"b-{round_id}-{prompt_id}-{ref}",
        "round_id": round_id,
        "prompt_id": prompt_id,
        "purpose": "train",
        "model_a": "v0",
        "model_b": ref,
        "response_a_id": f"r-v0-{prompt_id}",
        "response_b_id": f"r-{ref}-{prompt_id}",
        "judge": "judge",
        "score_a": score_a,
        "score_b": score_b,
        "score_gap": abs(score_a - score_b),
        "outcome": outcome,
    }


# prompt -> battles against (mixed, strong): (outcome from the champion's side, score_a, score_b)
LITERAL_BATTLES = {
    "p_lost_both": [("loss", 2, 7), ("loss", 2, 9)],  # SFT from strong (higher score); DPO strong
    "p_lost_small": [("loss", 5, 7), ("loss", 5, 6.5)],  # gap 2 and 1.5: DPO only (K=2)
    "p_won": [("win", 9, 3), ("win", 8, 7)],  # DPO with the champion's own answer chosen
    "p_tie": [("tie", 5, 5), ("tie", 6, 6)],
    "p_inconsistent": [("inconsistent", 2, 9), ("inconsistent", 2, 9)],
    "p_unparsed": [("unparsed", 1, 9), ("error", 1, 9)],
    "p_eval": [("loss", 1, 9), ("loss", 1, 9)],  # eval split: never training data
    "p_contaminated": [("loss", 1, 9), ("loss", 1, 9)],  # contaminated: never training data
}


@pytest.fixture
def literal_battles(smoke_config: Config) -> Config:
    prompts = [prompt_row(p) for p in LITERAL_BATTLES if p not in ("p_eval", "p_contaminated")]
    prompts += [
        prompt_row("p_eval", split="eval"),
        prompt_row("p_contaminated", status="contaminated"),
    ]
    battles, responses = [], []
    for prompt_id, games in LITERAL_BATTLES.items():
        for ref, (outcome, score_a, score_b) in zip(REFS, games, strict=True):
            battles.append(battle_row(prompt_id, ref, outcome, score_a, score_b))
            responses.append(
                {
                    "response_id": f"r-{ref}-{prompt_id}",
                    "prompt_id": prompt_id,
                    "model_id": ref,
                    "sample_idx": 0,
                    "round_id": 1,
                    "response_text": f"{ref} says",
                }
            )
        responses.append(
            {
                "response_id": f"r-v0-{prompt_id}",
                "prompt_id": prompt_id,
                "model_id": "v0",
                "sample_idx": 0,
                "round_id": 1,
                "response_text": "v0 says",
            }
        )
    with connect(smoke_config.warehouse.path) as con:
        insert_new(con, "prompts", prompts, ["prompt_id"])
        insert_new(con, "responses", responses, ["response_id"])
        insert_new(con, "battles", battles, ["battle_id"])
    return smoke_config


def test_first_iteration_uses_arena_learning_gaps_and_later_ones_use_one(
    smoke_config: Config,
) -> None:
    first = {r.kind: r.min_gap for r in mining_rules(smoke_config, 1, "sft")}
    later = {r.kind: r.min_gap for r in mining_rules(smoke_config, 4, "rm+rl")}
    assert first == {"sft": 3.0, "dpo": 2.0}
    assert later == {"sft": 1.0, "dpo": 1.0, "rm": 1.0}


def test_sft_takes_the_best_winning_reference_of_losses_by_at_least_k(
    literal_battles: Config,
) -> None:
    report = mine_round(literal_battles, 1, "sft")
    with connect(literal_battles.warehouse.path) as con:
        rows = con.execute(
            "select prompt_id, source_model, rule_min_gap, battle_id from sft_examples"
        ).fetchall()
    assert rows == [("p_lost_both", "ref:strong", 3.0, "b-1-p_lost_both-ref:strong")]
    assert report.n_added == {"sft": 1, "dpo": 3}


def test_dpo_pairs_take_the_widest_decisive_gap_and_may_choose_the_champion(
    literal_battles: Config,
) -> None:
    mine_round(literal_battles, 1, "dpo")
    with connect(literal_battles.warehouse.path) as con:
        rows = con.execute(
            "select prompt_id, chosen_model, rejected_model, score_gap from preference_pairs "
            "where kind = 'dpo' order by prompt_id"
        ).fetchall()
    assert rows == [
        ("p_lost_both", "ref:strong", "v0", 7.0),
        ("p_lost_small", "ref:mixed", "v0", 2.0),
        ("p_won", "v0", "ref:mixed", 6.0),
    ]


def test_rm_pairs_are_mined_on_the_rm_stage_only(literal_battles: Config) -> None:
    assert "rm" not in mine_round(literal_battles, 1, "dpo").n_total
    report = mine_round(literal_battles, 1, "rm+rl")
    assert report.n_total == {"sft": 1, "dpo": 3, "rm": 3}


def test_mining_twice_adds_nothing(literal_battles: Config) -> None:
    mine_round(literal_battles, 1, "rm+rl")
    again = mine_round(literal_battles, 1, "rm+rl")
    assert again.n_added == {"sft": 0, "dpo": 0, "rm": 0}
    assert again.n_total == {"sft": 1, "dpo": 3, "rm": 3}


def test_training_rows_are_trl_ready_and_accumulate_earlier_rounds(literal_battles: Config) -> None:
    mine_round(literal_battles, 1, "dpo")
    with connect(literal_battles.warehouse.path) as con:
        insert_new(
            con,
            "battles",
            [battle_row("p_won", "ref:strong", "loss", 1, 9, round_id=2)],
            ["battle_id"],
        )
    mine_round(literal_battles, 2, "dpo")
    rows = training_rows(literal_battles, 2, "dpo")
    assert len(rows) == 4
    assert rows[0]["prompt"] == [{"role": "user", "content": "question p_lost_both"}]
    assert rows[0]["chosen"] == [{"role": "assistant", "content": "ref:strong says"}]
    sft_rows = training_rows(literal_battles, 2, "sft")
    assert [r["messages"][-1]["content"] for r in sft_rows] == [
        "ref:strong says",
        "ref:strong says",
    ]


def label_battle(prompt_id: str, ref: str, outcome: str, strength: float | None) -> dict:
    """A battle judged without scores (a label protocol): no score gap, a label strength."""
    row = battle_row(prompt_id, ref, outcome, 0, 0, round_id=3)
    return row | {"score_a": None, "score_b": None, "score_gap": None, "label_strength": strength}


def test_battles_without_scores_are_mined_by_label_strength(literal_battles: Config) -> None:
    with connect(literal_battles.warehouse.path) as con:
        insert_new(
            con,
            "battles",
            [
                label_battle("p_lost_both", "ref:mixed", "loss", 1.0),  # slightly better twice
                label_battle("p_lost_both", "ref:strong", "loss", 2.0),  # significantly, twice
                label_battle("p_lost_small", "ref:mixed", "loss", 0.5),  # below the minimum
                label_battle("p_won", "ref:mixed", "win", None),  # no strength, no gap: skipped
            ],
            ["battle_id"],
        )
    report = mine_round(literal_battles, 3, "dpo")
    with connect(literal_battles.warehouse.path) as con:
        sft = con.execute(
            "select prompt_id, source_model, score_gap, label_strength from sft_examples "
            "where round_id = 3"
        ).fetchall()
        pairs = con.execute(
            "select prompt_id, chosen_model, label_strength from preference_pairs "
            "where round_id = 3 order by prompt_id"
        ).fetchall()
    assert sft == [("p_lost_both", "ref:strong", None, 2.0)]  # the strongest label wins
    assert pairs == [("p_lost_both", "ref:strong", 2.0)]
    assert report.n_added == {"sft": 1, "dpo": 1}
