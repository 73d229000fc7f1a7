"""The data mix per stage (training.mix): the shares are respected, the same rows are kept on a
rerun, the mix asked and got is recorded with the training run, bad mixes are refused, and
without a mix every row is kept."""

from __future__ import annotations

import json

import pytest

from flywheel.config import Config, ConfigError
from flywheel.tasks.data_mix import apply_mix, quotas
from flywheel.tasks.mine import mine_round, training_mix
from flywheel.tasks.train import run_training_stage
from flywheel.warehouse.lifecycle import ModelVersion
from flywheel.warehouse.store import connect
from tests.conftest import load_config_in
from tests.tasks.feedback_fixtures import logged_feedback  # noqa: F401 (the fixture)
from tests.tasks.test_mine import literal_battles  # noqa: F401 (the fixture)


def _rows(n_battle: int, n_feedback: int, round_id: int = 3) -> list[dict]:
    return [
        {
            "messages": [{"role": "user", "content": f"{origin} {i}"}],
            "origin": origin,
            "round_id": round_id,
        }
        for origin, n in (("battle", n_battle), ("feedback", n_feedback))
        for i in range(n)
    ]


def _with_mix(config: Config, mix: dict[str, dict[str, float]]) -> Config:
    return config.model_copy(update={"training": config.training.model_copy(update={"mix": mix})})


def test_quotas_take_the_largest_set_that_matches_the_shares() -> None:
    assert quotas({"battle": 0.5, "feedback": 0.5}, {"battle": 10, "feedback": 3}) == {
        "battle": 3,
        "feedback": 3,
    }
    assert quotas({"battle": 0.7, "feedback": 0.3}, {"battle": 100, "feedback": 30}) == {
        "battle": 70,
        "feedback": 30,
    }
    assert quotas({"battle": 1.0, "feedback": 0.0}, {"battle": 4, "feedback": 9}) == {"battle": 4}
    assert quotas({"battle": 0.5, "feedback": 0.5}, {"battle": 4}) == {"battle": 0, "feedback": 0}


def test_a_mix_keeps_the_shares_the_same_rows_on_rerun_and_drops_the_origin_column() -> None:
    rows = _rows(10, 4)
    kept, report = apply_mix(rows, 3, {"battle": 0.5, "feedback": 0.5}, seed=0)
    again, _ = apply_mix(rows, 3, {"battle": 0.5, "feedback": 0.5}, seed=0)
    other_seed, _ = apply_mix(rows, 3, {"battle": 0.5, "feedback": 0.5}, seed=1)
    assert kept == again and kept != other_seed
    assert report.describe() == {
        "asked": {"battle": 0.5, "feedback": 0.5},
        "available": {"battle": 10, "feedback": 4},
        "got": {"battle": 4, "feedback": 4},
    }
    assert [row["origin"] for row in kept] == ["battle"] * 4 + ["feedback"] * 4  # view order


def test_a_mix_keeps_the_rounds_own_rows_before_earlier_ones() -> None:
    rows = _rows(3, 0, round_id=1) + _rows(2, 2, round_id=3)
    kept, _ = apply_mix(rows, 3, {"battle": 0.5, "feedback": 0.5}, seed=0)
    assert [(row["origin"], row["round_id"]) for row in kept] == [
        ("battle", 3),
        ("battle", 3),
        ("feedback", 3),
        ("feedback", 3),
    ]


def test_without_a_mix_every_row_is_kept_and_counted() -> None:
    rows = _rows(3, 2)
    kept, report = apply_mix(rows, 3, None, seed=0)
    assert kept == rows
    assert report.describe() == {
        "asked": None,
        "available": {"battle": 3, "feedback": 2},
        "got": {"battle": 3, "feedback": 2},
    }


def test_the_stages_rows_follow_its_mix_and_the_run_records_it(
    literal_battles: Config,  # noqa: F811
    logged_feedback: Config,  # noqa: F811
) -> None:
    mine_round(logged_feedback, 1, "sft")  # battle: p_lost_both; feedback: four answers
    everything = training_mix(logged_feedback, 1, "sft")
    assert everything.mix is not None and everything.mix.got == {"battle": 1, "feedback": 4}
    assert len(everything.rows) == 5 and all(set(row) == {"messages"} for row in everything.rows)
    mixed = _with_mix(logged_feedback, {"sft": {"battle": 0.5, "feedback": 0.5}})
    half = training_mix(mixed, 1, "sft")
    assert half.mix is not None and half.mix.got == {"battle": 1, "feedback": 1}
    assert half.rows == training_mix(mixed, 1, "sft").rows
    assert half.recorded()["mix"] == {
        "asked": {"battle": 0.5, "feedback": 0.5},
        "available": {"battle": 1, "feedback": 4},
        "got": {"battle": 1, "feedback": 1},
    }
    sft = mixed.training.sft.model_copy(update={"min_examples": 100})
    skipping = mixed.model_copy(update={"training": mixed.training.model_copy(update={"sft": sft})})
    champion = ModelVersion("v0", "unused", "champion")
    assert run_training_stage(skipping, 1, "sft", champion).status == "skipped"
    with connect(mixed.warehouse.path) as con:
        (hyperparams,) = con.execute("select hyperparams from training_runs").fetchone()
    assert json.loads(hyperparams)["mix"]["got"] == {"battle": 1, "feedback": 1}


@pytest.mark.parametrize(
    ("mix", "refusal"),
    [
        ({"ppo": {"battle": 1.0}}, "names no training stage 'ppo'"),
        ({"dpo": {"battle": 0.5, "refine": 0.5}}, "dpo rows have no origin refine"),
        ({"sft": {"battle": 1.5, "feedback": -0.5}}, "is not from 0 to 1"),
        ({"sft": {"battle": 0.5, "feedback": 0.4}}, "the shares sum to 0.9, not 1"),
        ({"sft": {"refine": 0.5, "feedback": 0.5}}, "sft_rule is arena"),
        ({"online-dpo": {"battle": 1.0}}, "rows its train step makes, of one origin"),
    ],
)
def test_a_mix_that_cannot_be_met_is_refused(tmp_path: object, mix: dict, refusal: str) -> None:
    with pytest.raises(ConfigError, match=refusal):
        load_config_in(tmp_path, training={"mix": mix})


def test_a_refine_share_is_taken_with_the_refine_rule(tmp_path: object) -> None:
    mix = {"sft": {"refine": 0.5, "feedback": 0.5}, "kto": {"feedback": 1.0}}
    mining = {"sft_rule": "refine"}
    config = load_config_in(tmp_path, training={"mix": mix, "mining": mining})
    assert config.training.mix == mix
