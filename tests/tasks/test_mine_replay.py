"""The replay budget (training.mining.replay_rows) on literal battles: a stage trains on its
round's rows and at most N earlier rows, newest round first and the widest gap first; no cap
keeps every earlier row; a cap keyed by no stage is refused. The online-dpo stage's fitted
reward models take their DPO pairs the same way (training.online_dpo.reward_fit_replay_rows), and
so do the judge budget's (judge.selection.fit_replay_rows)."""

from __future__ import annotations

import pytest

from flywheel.config import Config, ConfigError
from flywheel.tasks.mine import mine_round, training_mix, training_rows
from flywheel.tasks.online_scores import RewardUnavailable, require_reward_models, reward_fit_pairs
from flywheel.tasks.select import _earlier_pairs
from flywheel.tasks.train import replay_text
from flywheel.warehouse.store import connect
from flywheel.warehouse.writes import insert_new
from tests.conftest import load_config_in
from tests.tasks.test_mine import battle_row, literal_battles  # noqa: F401 (the fixture)


def _three_rounds(config: Config) -> Config:
    """Round 1: three DPO pairs (gaps 7, 2 and 6); round 2: one (gap 8); round 3: one."""
    mine_round(config, 1, "dpo")
    with connect(config.warehouse.path) as con:
        later = [
            battle_row("p_won", "ref:strong", "loss", 1, 9, round_id=2),
            battle_row("p_lost_small", "ref:strong", "loss", 0, 3, round_id=3),
        ]
        insert_new(con, "battles", later, ["battle_id"])
    mine_round(config, 2, "dpo")
    mine_round(config, 3, "dpo")
    return config


def _with_replay(config: Config, replay_rows: dict[str, int]) -> Config:
    mining = config.training.mining.model_copy(update={"replay_rows": replay_rows})
    training = config.training.model_copy(update={"mining": mining})
    return config.model_copy(update={"training": training})


def _prompts(rows: list[dict]) -> list[str]:
    return [row["prompt"][0]["content"].removeprefix("question ") for row in rows]


def test_a_capped_replay_keeps_the_newest_rounds_and_widest_gaps_first(
    literal_battles: Config,  # noqa: F811
) -> None:
    capped = _with_replay(_three_rounds(literal_battles), {"dpo": 2})
    mix = training_mix(capped, 3, "dpo")
    # round 1's widest pair (gap 7), round 2's only pair, then round 3's own
    assert _prompts(mix.rows) == ["p_lost_both", "p_won", "p_lost_small"]
    assert mix.describe() == {
        "replay_rows": 2,
        "n_this_round": 1,
        "n_earlier": 2,
        "n_earlier_available": 4,
    }
    assert replay_text(mix) == " (1 this round, 2 of 4 earlier by training.mining.replay_rows)"


def test_a_cap_of_zero_trains_on_the_round_alone_and_no_cap_on_everything(
    literal_battles: Config,  # noqa: F811
) -> None:
    config = _three_rounds(literal_battles)
    alone = training_mix(_with_replay(config, {"dpo": 0}), 3, "dpo")
    assert _prompts(alone.rows) == ["p_lost_small"] and alone.n_earlier_available == 4
    uncapped = training_mix(config, 3, "dpo")
    assert len(uncapped.rows) == 5 and uncapped.n_earlier == 4 and uncapped.replay_rows is None
    assert uncapped.rows == training_rows(config, 3, "dpo") and replay_text(uncapped) == ""
    other_stage = training_mix(_with_replay(config, {"sft": 0}), 3, "dpo")
    assert other_stage.rows == uncapped.rows  # the cap is the sft stage's, not dpo's


def test_without_accumulate_nothing_is_replayed(literal_battles: Config) -> None:  # noqa: F811
    config = _three_rounds(literal_battles)
    mining = config.training.mining.model_copy(update={"accumulate": False})
    alone = config.model_copy(
        update={"training": config.training.model_copy(update={"mining": mining})}
    )
    mix = training_mix(alone, 3, "dpo")
    assert _prompts(mix.rows) == ["p_lost_small"]
    assert (mix.n_earlier, mix.n_earlier_available) == (0, 0)


@pytest.mark.parametrize(
    ("replay_rows", "refusal"),
    [({"ppo": 10}, "names no training stage: ppo"), ({"dpo": -1}, "a negative cap for dpo")],
)
def test_a_replay_cap_must_name_a_stage_and_be_positive(
    tmp_path: object, replay_rows: dict, refusal: str
) -> None:
    with pytest.raises(ConfigError, match=refusal):
        load_config_in(tmp_path, training={"mining": {"replay_rows": replay_rows}})


def _with_reward_fit_cap(config: Config, cap: int | None, min_pairs: int) -> Config:
    online = config.training.online_dpo.model_copy(update={"reward_fit_replay_rows": cap})
    rm = config.training.rm.model_copy(update={"min_examples": min_pairs})
    training = config.training.model_copy(update={"online_dpo": online, "rm": rm})
    return config.model_copy(update={"training": training})


def test_the_online_reward_fit_takes_earlier_pairs_as_a_capped_replay(
    literal_battles: Config,  # noqa: F811
) -> None:
    config = _three_rounds(literal_battles)
    capped = reward_fit_pairs(_with_reward_fit_cap(config, 2, 1), 3)
    assert _prompts(capped.rows) == ["p_lost_both", "p_won", "p_lost_small"]  # as dpo's replay
    assert capped.describe() == (
        "3 DPO pairs (2 of 4 earlier by training.online_dpo.reward_fit_replay_rows)"
    )
    uncapped = reward_fit_pairs(config, 3)
    assert len(uncapped.rows) == 5 and uncapped.describe() == "5 DPO pairs"
    # the check before sampling counts the pairs the fit would get: 3 capped, 5 not
    require_reward_models(_with_reward_fit_cap(config, None, 5), 3)
    require_reward_models(_with_reward_fit_cap(config, 2, 3), 3)
    with pytest.raises(RewardUnavailable, match="3 DPO pairs mined up to this round, fewer"):
        require_reward_models(_with_reward_fit_cap(config, 2, 4), 3)


def test_the_judge_budgets_reward_fit_keeps_the_last_round_and_caps_older_ones(
    literal_battles: Config,  # noqa: F811
) -> None:
    config = _three_rounds(literal_battles)
    selection = config.judge.selection.model_copy(update={"fit_replay_rows": 2})
    capped = config.model_copy(
        update={"judge": config.judge.model_copy(update={"selection": selection})}
    )
    # round 4's selector: round 3's pair, then round 2's and round 1's widest (of four older)
    assert _prompts(_earlier_pairs(capped, 4)) == ["p_lost_both", "p_won", "p_lost_small"]
    assert len(_earlier_pairs(config, 4)) == 5 and _earlier_pairs(capped, 1) == []
