"""The reward-model ensemble's arithmetic (llm/reward_ensemble.py): split, resamples, reward."""

from __future__ import annotations

import numpy as np
import pytest
import yaml

from flywheel.config import ConfigError, parse_config
from flywheel.llm.reward_ensemble import (
    Normaliser,
    bootstrap_indices,
    combine,
    disagreement_stop_reason,
    heldout_split,
    pair_accuracy,
)
from tests.conftest import REPO_ROOT


def test_heldout_split_is_seeded_disjoint_and_complete() -> None:
    train, heldout = heldout_split(100, 0.15, seed=3)
    assert len(heldout) == 15 and sorted(train + heldout) == list(range(100))
    assert heldout_split(100, 0.15, seed=3) == (train, heldout)
    assert heldout_split(100, 0.15, seed=4)[1] != heldout


def test_heldout_split_keeps_one_pair_each_side_and_none_at_fraction_zero() -> None:
    assert heldout_split(10, 0.0, seed=0) == (list(range(10)), [])
    assert len(heldout_split(5, 0.01, seed=0)[1]) == 1  # a positive fraction holds one out
    assert heldout_split(1, 0.4, seed=0) == ([0], [])


def test_a_single_model_trains_on_every_row_and_members_on_different_resamples() -> None:
    assert bootstrap_indices(6, 1, seed=0) == [list(range(6))]
    samples = bootstrap_indices(50, 3, seed=0)
    assert [len(s) for s in samples] == [50, 50, 50]
    assert len({tuple(s) for s in samples}) == 3  # each member its own resample
    assert all(len(set(s)) < 50 for s in samples)  # with replacement: some rows repeat
    assert bootstrap_indices(50, 3, seed=0) == samples
    assert bootstrap_indices(50, 3, seed=1) != samples


def test_normaliser_standardises_by_the_models_own_mean_and_std() -> None:
    normaliser = Normaliser.fit([1.0, 3.0, 5.0, 7.0])
    standardised = normaliser.apply([1.0, 3.0, 5.0, 7.0])
    assert standardised.mean() == pytest.approx(0.0) and standardised.std() == pytest.approx(1.0)
    assert Normaliser.fit([2.0, 2.0]).apply([2.0, 3.0]).tolist() == [0.0, 1.0]  # constant: std 1


def test_combined_reward_is_lower_where_models_disagree() -> None:
    # two samples with the same mean standardised score; the models agree on the first only
    standardised = np.array([[1.0, 0.0], [1.0, 2.0]])
    reward, disagreement = combine(standardised, penalty=0.5)
    assert disagreement.tolist() == [0.0, 1.0]
    assert reward.tolist() == [1.0, 0.5]
    assert combine(standardised, penalty=0.0)[0].tolist() == [1.0, 1.0]
    single_reward, single_spread = combine(np.array([[0.3, -0.2]]), penalty=2.0)
    assert single_spread.tolist() == [0.0, 0.0] and single_reward.tolist() == [0.3, -0.2]


def test_pair_accuracy_counts_chosen_above_rejected_and_ties_as_half() -> None:
    assert pair_accuracy([2.0, 1.0, 0.5, 3.0], [1.0, 2.0, 0.5, 0.0]) == pytest.approx(0.625)
    assert np.isnan(pair_accuracy([], []))


def test_disagreement_stop_triggers_only_above_the_factor_of_the_first_batch() -> None:
    assert disagreement_stop_reason([0.2], 1.5) is None
    assert disagreement_stop_reason([0.2, 0.29, 0.3], 1.5) is None  # 1.5 x 0.2 is not above
    reason = disagreement_stop_reason([0.2, 0.25, 0.31], 1.5)
    assert reason is not None and "rose above 1.5" in reason
    assert disagreement_stop_reason([0.0, 1.0], 1.5) is None  # no spread at the start


def test_disagreement_stop_compares_window_means_so_one_noisy_batch_does_not_stop() -> None:
    noisy = [0.2, 0.2, 0.2, 0.7, 0.2, 0.2]  # one outlier: the last three average 0.37
    assert disagreement_stop_reason(noisy, 2.0, window=1) is None
    assert disagreement_stop_reason(noisy[:4], 2.0, window=1) is not None
    assert disagreement_stop_reason(noisy, 2.0, window=3) is None
    assert disagreement_stop_reason([0.2, 0.2, 0.2, 0.9, 0.9], 2.0, window=3) is None  # too few
    rising = [0.2, 0.2, 0.2, 0.5, 0.5, 0.5]
    reason = disagreement_stop_reason(rising, 2.0, window=3)
    assert reason is not None and "mean of the last 3 batches" in reason


def _smoke_training(rm: dict, rl: dict) -> dict:
    data = yaml.safe_load((REPO_ROOT / "configs" / "smoke.yaml").read_text())
    data["training"]["rm"] |= rm
    data["training"]["rl"] |= rl
    return data


def test_ensemble_settings_default_to_one_model_and_are_read_from_the_config() -> None:
    config = parse_config(_smoke_training({}, {}), "smoke.yaml")
    assert config.training.rm.ensemble_size == 1 and config.training.rm.heldout_fraction == 0
    assert config.training.rl.early_stop_disagreement_factor is None
    rm = {"ensemble_size": 3, "heldout_fraction": 0.15}
    rl = {"disagreement_penalty": 0.5, "early_stop_disagreement_factor": 2.0}
    config = parse_config(_smoke_training(rm, rl), "smoke.yaml")
    assert config.training.rm.ensemble_size == 3 and config.training.rl.disagreement_penalty == 0.5


def test_early_stop_on_disagreement_without_an_ensemble_is_refused() -> None:
    data = _smoke_training({}, {"early_stop_disagreement_factor": 2.0})
    with pytest.raises(ConfigError) as refused:
        parse_config(data, "smoke.yaml")
    message = str(refused.value)
    assert "training.rl.early_stop_disagreement_factor = 2.0" in message
    assert "training.rm.ensemble_size to 2 or more" in message


def test_the_round_log_line_names_the_ensembles_accuracy_and_the_early_stop() -> None:
    from flywheel.llm.stages.rl_metrics import reward_model_line

    assert reward_model_line({"rm_ensemble_size": 1}) == "reward models: 1"
    line = reward_model_line(
        {
            "rm_ensemble_size": 2,
            "rm_ensemble_heldout_accuracy": 0.75,
            "rm_member_heldout_accuracy": [0.5, 0.75],
            "rm_n_heldout_pairs": 4,
            "rl_stopped_early": True,
            "rl_stop_step": 7,
            "rl_stop_reason": "ensemble disagreement 0.4 rose above 2 x its first value 0.1",
        }
    )
    assert line == (
        "reward models: 2; held-out pair accuracy 0.750 on 4 pairs (each 0.500, 0.750); "
        "RL stopped early at step 7: ensemble disagreement 0.4 rose above 2 x its first value 0.1"
    )
