"""The judge budget's arithmetic: win probabilities, uncertainty and the choice of battles."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from flywheel.config import ConfigError, SelectionConfig
from flywheel.evaluators.battle_selection import (
    battle_uncertainty,
    highest,
    random_choice,
    reference_win_probabilities,
)
from tests.conftest import load_config_in


def test_win_probability_is_the_logistic_of_the_score_difference() -> None:
    champion = np.array([[0.0, 2.0, 0.0]])
    reference = np.array([[0.0, 0.0, 2.0]])
    p = reference_win_probabilities(champion, reference)
    assert p[0, 0] == pytest.approx(0.5)
    assert p[0, 1] == pytest.approx(1 / (1 + np.exp(2)))
    assert p[0, 1] + p[0, 2] == pytest.approx(1.0)


def test_uncertainty_is_one_bit_when_undecided_or_contradicted_and_low_when_all_agree() -> None:
    p = np.array(
        [
            [0.5, 0.99, 0.01, 0.9],
            [0.5, 0.99, 0.99, 0.9],
        ]
    )
    undecided, sure, contradicted, fairly_sure = battle_uncertainty(p)
    assert undecided == pytest.approx(1.0)
    assert contradicted == pytest.approx(1.0)
    assert sure < 0.1 < fairly_sure < 1.0


def test_the_budget_takes_the_highest_battles_and_breaks_ties_by_order() -> None:
    assert highest([0.2, 0.9, 0.5, 0.9, 0.1], 2) == [1, 3]
    assert highest([0.3, 0.3, 0.3], 2) == [0, 1]
    assert highest([0.3, 0.1], 5) == [0, 1]


def test_random_choice_is_seeded_within_budget_and_without_repeats() -> None:
    first = random_choice(100, 30, seed=4)
    assert first == random_choice(100, 30, seed=4)
    assert first != random_choice(100, 30, seed=5)
    assert len(set(first)) == 30 and all(0 <= i < 100 for i in first)
    assert random_choice(3, 10, seed=0) == [0, 1, 2]


def test_a_budgeted_strategy_without_a_budget_is_refused_with_the_fix(tmp_path: Path) -> None:
    assert SelectionConfig().strategy == "all"
    with pytest.raises(ConfigError, match=r"judge\.selection\.max_battles = null: .*Fix: set"):
        load_config_in(tmp_path, judge={"selection": {"strategy": "uncertain"}})
    config = load_config_in(tmp_path, judge={"selection": {"strategy": "random", "max_battles": 9}})
    assert config.judge.selection.max_battles == 9
