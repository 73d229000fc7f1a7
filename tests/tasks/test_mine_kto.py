"""KTO mining on literal battles: every decisive battle labels both answers, also below the DPO
gap; an answer judged twice takes its widest-gap battle's label; the rows export for TRL."""

from __future__ import annotations

from flywheel.config import Config
from flywheel.tasks.mine import mine_round, mining_rules, training_rows
from flywheel.warehouse.contracts import contract_violations
from flywheel.warehouse.store import connect
from flywheel.warehouse.writes import insert_new
from tests.tasks.test_mine import battle_row, literal_battles  # noqa: F401 (the fixture)

KTO_COLUMNS = "prompt_id, source_model, label, n_battles, score_gap, source"


def _kto_rows(config: Config, round_id: int = 1) -> list[tuple]:
    with connect(config.warehouse.path) as con:
        return con.execute(
            f"select {KTO_COLUMNS} from kto_examples where round_id = ? "
            "order by prompt_id, source_model",
            [round_id],
        ).fetchall()


def _with_kto_gap(config: Config, kto_min_gap: float) -> Config:
    mining = config.training.mining.model_copy(update={"kto_min_gap": kto_min_gap})
    training = config.training.model_copy(update={"mining": mining})
    return config.model_copy(update={"training": training})


def test_kto_labels_both_answers_of_every_decisive_battle(
    literal_battles: Config,  # noqa: F811
) -> None:
    report = mine_round(literal_battles, 1, "kto")
    assert report.n_added == {"sft": 1, "dpo": 3, "kto": 9}
    assert _kto_rows(literal_battles) == [
        ("p_lost_both", "ref:mixed", True, 1, 5.0, "battle"),
        ("p_lost_both", "ref:strong", True, 1, 7.0, "battle"),
        ("p_lost_both", "v0", False, 2, 7.0, "battle"),
        ("p_lost_small", "ref:mixed", True, 1, 2.0, "battle"),
        ("p_lost_small", "ref:strong", True, 1, 1.5, "battle"),  # below DPO's K = 2
        ("p_lost_small", "v0", False, 2, 2.0, "battle"),
        ("p_won", "ref:mixed", False, 1, 6.0, "battle"),
        ("p_won", "ref:strong", False, 1, 1.0, "battle"),  # below DPO's K = 2
        ("p_won", "v0", True, 2, 6.0, "battle"),
    ]
    with connect(literal_battles.warehouse.path) as con:
        assert contract_violations(con) == []


def test_kto_is_mined_on_its_own_stage_with_its_own_gap(
    literal_battles: Config,  # noqa: F811
) -> None:
    assert "kto" not in mine_round(literal_battles, 1, "dpo").n_total
    assert {r.kind: r.min_gap for r in mining_rules(literal_battles, 4, "kto")}["kto"] == 0.5
    stricter = _with_kto_gap(literal_battles, 1.5)
    mine_round(stricter, 1, "kto")
    assert [row[:3] for row in _kto_rows(stricter)] == [
        ("p_lost_both", "ref:mixed", True),
        ("p_lost_both", "ref:strong", True),
        ("p_lost_both", "v0", False),
        ("p_lost_small", "ref:mixed", True),
        ("p_lost_small", "ref:strong", True),
        ("p_lost_small", "v0", False),
        ("p_won", "ref:mixed", False),
        ("p_won", "v0", True),
    ]


def test_a_champion_answer_that_won_and_lost_takes_the_wider_gaps_label(
    literal_battles: Config,  # noqa: F811
) -> None:
    with connect(literal_battles.warehouse.path) as con:
        split = [
            battle_row("p_tie", "ref:mixed", "win", 8, 5, round_id=2),  # won by 3
            battle_row("p_tie", "ref:strong", "loss", 4, 9, round_id=2),  # lost by 5
        ]
        insert_new(con, "battles", split, ["battle_id"])
    mine_round(literal_battles, 2, "kto")
    assert _kto_rows(literal_battles, 2) == [
        ("p_tie", "ref:mixed", False, 1, 3.0, "battle"),
        ("p_tie", "ref:strong", True, 1, 5.0, "battle"),
        ("p_tie", "v0", False, 2, 5.0, "battle"),
    ]


def test_kto_rows_export_as_trls_prompt_completion_label(
    literal_battles: Config,  # noqa: F811
) -> None:
    mine_round(literal_battles, 1, "kto")
    again = mine_round(literal_battles, 1, "kto")
    assert again.n_added["kto"] == 0 and again.n_total["kto"] == 9
    rows = training_rows(literal_battles, 1, "kto")
    assert len(rows) == 9 and sum(row["label"] for row in rows) == 5
    row = next(r for r in rows if r["completion"][0]["content"] == "ref:strong says")
    assert set(row) == {"prompt", "completion", "label"}
    assert row["prompt"][0]["role"] == "user" and row["completion"][0]["role"] == "assistant"
