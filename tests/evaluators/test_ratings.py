"""Properties of Bradley-Terry ratings, their bootstrap intervals, and online Elo."""

import math

import numpy as np
import pytest

from flywheel.evaluators.battle_counts import BattleCounts, aggregate_battles
from flywheel.evaluators.bradley_terry import fit_bradley_terry
from flywheel.evaluators.ratings import bootstrap_ratings, online_elo, rating_warnings


def draw_battles(
    true_elo: dict[str, float], n_battles: int, rng: np.random.Generator
) -> tuple[list[str], list[str], list[str]]:
    """Battles between random distinct models, won as a Bradley-Terry model says (no ties)."""
    models = list(true_elo)
    strength = np.array([true_elo[m] for m in models])
    idx_a = rng.integers(0, len(models), n_battles)
    idx_b = (idx_a + rng.integers(1, len(models), n_battles)) % len(models)
    p_a_wins = 1.0 / (1.0 + 10.0 ** ((strength[idx_b] - strength[idx_a]) / 400.0))
    outcome = np.where(rng.random(n_battles) < p_a_wins, "a", "b")
    return [models[i] for i in idx_a], [models[i] for i in idx_b], outcome.tolist()


def literal_counts(rows: list[tuple[str, str, str, int]]) -> BattleCounts:
    """Counts from (model_a, model_b, outcome, n_battles) rows."""
    a, b, o = [], [], []
    for model_a, model_b, outcome, n in rows:
        a += [model_a] * n
        b += [model_b] * n
        o += [outcome] * n
    return aggregate_battles(a, b, o)


TRUE_ELO = {"m0": 1000.0, "m1": 1100.0, "m2": 950.0, "m3": 1200.0, "m4": 1050.0}


def test_ratings_recover_known_strengths_within_15_elo():
    rng = np.random.default_rng(7)
    counts = aggregate_battles(*draw_battles(TRUE_ELO, 20_000, rng))
    ratings = fit_bradley_terry(counts, anchor_model="m0", anchor_rating=1000.0)
    for model, truth in TRUE_ELO.items():
        assert abs(ratings[model] - truth) < 15.0, (model, ratings[model], truth)


def test_bootstrap_interval_covers_truth_about_95_percent_of_the_time():
    true_elo = {"m0": 1000.0, "m1": 1080.0, "m2": 930.0, "m3": 1150.0}
    covered = []
    for repetition in range(200):
        rng = np.random.default_rng(1000 + repetition)
        counts = aggregate_battles(*draw_battles(true_elo, 2_000, rng))
        ratings = bootstrap_ratings(counts, n_samples=200, seed=repetition, anchor_model="m0")
        covered += [r.ci_low <= true_elo[r.model] <= r.ci_high for r in ratings if r.model != "m0"]
    coverage = float(np.mean(covered))
    assert 0.88 <= coverage <= 0.99, coverage


def test_ratings_are_invariant_to_battle_order():
    rng = np.random.default_rng(3)
    a, b, o = draw_battles(TRUE_ELO, 5_000, rng)
    order = rng.permutation(len(a))
    shuffled = [a[i] for i in order], [b[i] for i in order], [o[i] for i in order]
    counts, counts_shuffled = aggregate_battles(a, b, o), aggregate_battles(*shuffled)
    assert fit_bradley_terry(counts) == pytest.approx(fit_bradley_terry(counts_shuffled), abs=1e-9)
    assert bootstrap_ratings(counts, n_samples=100) == bootstrap_ratings(
        counts_shuffled, n_samples=100
    )


def test_swapping_sides_does_not_change_ratings():
    rng = np.random.default_rng(4)
    a, b, o = draw_battles(TRUE_ELO, 3_000, rng)
    swapped_outcome = [{"a": "b", "b": "a"}[x] for x in o]
    assert fit_bradley_terry(aggregate_battles(a, b, o)) == pytest.approx(
        fit_bradley_terry(aggregate_battles(b, a, swapped_outcome)), abs=1e-9
    )


def test_anchor_model_gets_anchor_rating_and_others_shift_with_it():
    rng = np.random.default_rng(5)
    counts = aggregate_battles(*draw_battles(TRUE_ELO, 3_000, rng))
    default = fit_bradley_terry(counts)
    anchored = fit_bradley_terry(counts, anchor_model="m3", anchor_rating=1500.0)
    assert default["m0"] == 1000.0  # first model by name is the default anchor
    assert anchored["m3"] == 1500.0
    shift = anchored["m3"] - default["m3"]
    for model in TRUE_ELO:
        assert anchored[model] - default[model] == pytest.approx(shift, abs=1e-6)
    boot = {
        r.model: r for r in bootstrap_ratings(counts, 50, anchor_model="m3", anchor_rating=1500)
    }
    assert boot["m3"].ci_low == boot["m3"].ci_high == boot["m3"].median == 1500.0


def test_a_tie_counts_as_half_a_win_for_each_side():
    with_ties = literal_counts([("x", "y", "a", 3), ("x", "y", "b", 1), ("x", "y", "tie", 2)])
    without = literal_counts([("x", "y", "a", 4), ("x", "y", "b", 2)])
    assert fit_bradley_terry(with_ties) == pytest.approx(fit_bradley_terry(without), abs=1e-9)
    # 4 wins to 2: odds 2:1 are 400 * log10(2) = 120.4 Elo (the weak prior moves it < 1 Elo).
    gap = fit_bradley_terry(without)["x"] - fit_bradley_terry(without)["y"]
    assert gap == pytest.approx(400 * math.log10(2), abs=1.0)
    only_ties = literal_counts([("x", "y", "tie", 10)])
    assert fit_bradley_terry(only_ties) == pytest.approx({"x": 1000.0, "y": 1000.0}, abs=1e-9)


def test_undefeated_model_gets_a_finite_rating_flagged_and_unbounded_above():
    counts = literal_counts([("x", "y", "a", 10), ("y", "z", "a", 6), ("y", "z", "b", 4)])
    ratings = fit_bradley_terry(counts, anchor_model="y")
    assert all(math.isfinite(r) for r in ratings.values())
    assert ratings["x"] > ratings["y"] + 300 and ratings["x"] < ratings["y"] + 2000
    boot = {r.model: r for r in bootstrap_ratings(counts, n_samples=200, anchor_model="y")}
    assert boot["x"].flags == ("never_lost",) and not boot["x"].estimable
    assert boot["x"].ci_high == math.inf and math.isfinite(boot["x"].ci_low)
    assert boot["y"].estimable and boot["z"].estimable
    assert all(math.isfinite(v) for m in "yz" for v in (boot[m].ci_low, boot[m].ci_high))
    assert rating_warnings(list(boot.values())) == [
        "x: never lost: the upper side of their rating comes from the prior only "
        "(interval unbounded above)"
    ]


def test_a_model_that_never_won_is_flagged_and_unbounded_below():
    counts = literal_counts([("x", "y", "b", 7), ("y", "z", "a", 3), ("y", "z", "b", 3)])
    boot = {r.model: r for r in bootstrap_ratings(counts, n_samples=50, anchor_model="z")}
    assert boot["x"].flags == ("never_won",) and boot["x"].ci_low == -math.inf
    assert math.isfinite(boot["x"].ci_high) and boot["y"].estimable and boot["z"].estimable


def test_a_group_that_never_lost_to_the_anchors_side_is_unbounded_above():
    counts = literal_counts(
        [("p", "q", "a", 5), ("p", "q", "b", 5), ("p", "r", "a", 4), ("q", "r", "a", 4)]
    )
    boot = {r.model: r for r in bootstrap_ratings(counts, n_samples=50, anchor_model="r")}
    assert boot["p"].flags == ("unbounded_above",) and boot["q"].flags == ("unbounded_above",)
    assert boot["p"].ci_high == math.inf and boot["r"].flags == ("never_won",)


def test_a_group_without_the_anchor_is_flagged_not_comparable():
    """Two groups that never met: the other group's intervals say nothing about the anchor."""
    rng = np.random.default_rng(11)
    group_1 = {"m0": 1000.0, "m1": 1100.0}
    group_2 = {"n0": 1300.0, "n1": 1250.0}
    a1, b1, o1 = draw_battles(group_1, 500, rng)
    a2, b2, o2 = draw_battles(group_2, 500, rng)
    counts = aggregate_battles(a1 + a2, b1 + b2, o1 + o2)
    assert all(math.isfinite(r) for r in fit_bradley_terry(counts).values())
    boot = {r.model: r for r in bootstrap_ratings(counts, n_samples=100, anchor_model="m0")}
    for model in group_2:
        assert boot[model].flags == ("not_connected_to_anchor",)
        assert (boot[model].ci_low, boot[model].ci_high) == (-math.inf, math.inf)
    assert boot["m1"].estimable and math.isfinite(boot["m1"].ci_high)
    (warning,) = rating_warnings(list(boot.values()))
    assert warning.startswith("n0, n1: no chain of battles links them to the anchor")


def test_a_model_without_battles_is_pulled_to_the_mean_rating_by_the_prior():
    counts = aggregate_battles(
        ["x", "y", "x"], ["y", "x", "y"], ["a", "a", "a"], ["x", "y", "idle"]
    )
    ratings = fit_bradley_terry(counts, anchor_model="x")
    assert ratings["idle"] == pytest.approx((ratings["x"] + ratings["y"]) / 2, abs=1e-6)
    assert counts.n_battles_by_model["idle"] == 0


def test_a_single_model_has_nothing_to_rate():
    counts = aggregate_battles(["x", "x"], ["x", "x"], ["a", "tie"])
    assert counts.models == ("x",) and counts.n_dropped == 2
    with pytest.raises(ValueError, match="no decisive or tied battles"):
        fit_bradley_terry(counts)


def test_empty_or_all_dropped_input_raises_a_clear_error():
    with pytest.raises(ValueError, match="no decisive or tied battles"):
        fit_bradley_terry(aggregate_battles([], [], []))
    with pytest.raises(ValueError, match="2 dropped"):
        bootstrap_ratings(aggregate_battles(["x", "x"], ["y", "y"], ["error", "unparsed"]))
    with pytest.raises(ValueError, match="no decisive or tied battles"):
        online_elo([], [], [])
    with pytest.raises(ValueError, match="one element per battle"):
        aggregate_battles(["x"], ["y", "z"], ["a"])


def test_unknown_anchor_is_refused_by_name():
    counts = literal_counts([("x", "y", "a", 1)])
    with pytest.raises(ValueError, match="anchor_model 'q'"):
        fit_bradley_terry(counts, anchor_model="q")


def test_bootstrap_interval_contains_median_and_is_listed_best_first():
    rng = np.random.default_rng(6)
    counts = aggregate_battles(*draw_battles(TRUE_ELO, 4_000, rng))
    ratings = bootstrap_ratings(counts, n_samples=300, ci=0.9)
    assert [r.rating for r in ratings] == sorted((r.rating for r in ratings), reverse=True)
    assert all(r.ci_low <= r.median <= r.ci_high for r in ratings)
    assert sum(r.n_battles for r in ratings) == 2 * counts.n_battles


def test_online_elo_moves_k_times_surprise_and_conserves_points():
    ratings = online_elo(["x"], ["y"], ["a"], k=32.0, initial=1000.0)
    assert ratings == pytest.approx({"x": 1016.0, "y": 984.0})
    rng = np.random.default_rng(8)
    ratings = online_elo(*draw_battles(TRUE_ELO, 5_000, rng), k=4.0)
    assert sum(ratings.values()) == pytest.approx(1000.0 * len(TRUE_ELO))
    assert max(ratings, key=ratings.get) == "m3"
