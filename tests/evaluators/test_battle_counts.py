"""Battles counted per model pair and outcome: labels read or refused, names checked."""

import numpy as np
import pytest

from flywheel.evaluators.battle_counts import aggregate_battle_frame, aggregate_battles


def test_other_outcomes_and_self_play_are_dropped_and_counted():
    counts = aggregate_battles(
        ["x", "x", "y", "x", "x", "x"],
        ["y", "y", "x", "y", "y", "x"],
        ["a", "inconsistent", "tie", "unparsed", "error", "a"],
    )
    assert counts.n_battles == 2
    assert counts.n_dropped == 4
    assert counts.n_battles_by_model == {"x": 2, "y": 2}


def test_fastchat_outcome_labels_are_read():
    fastchat = aggregate_battles(
        ["x", "x", "y", "y"], ["y", "y", "x", "x"], ["model_a", "tie (bothbad)", "model_b", "tie"]
    )
    ours = aggregate_battles(["x", "x", "y", "y"], ["y", "y", "x", "x"], ["a", "tie", "b", "tie"])
    assert np.array_equal(fastchat.n_battles_by_outcome, ours.n_battles_by_outcome)
    assert fastchat.n_dropped == 0


def test_unrecognised_outcome_labels_are_refused_by_name_not_dropped():
    with pytest.raises(ValueError, match=r"not recognised: 'draw', 'A' \(2 of 4 battles\)"):
        aggregate_battles(["x"] * 4, ["y"] * 4, ["a", "draw", "A", "unparsed"])
    with pytest.raises(ValueError, match="None/NaN"):
        aggregate_battles(["x", "x"], ["y", "y"], ["a", None])


def test_model_names_that_are_not_strings_are_refused_clearly():
    with pytest.raises(ValueError, match=r"model_b holds 7 \(int\), first at battle 1"):
        aggregate_battles(["x", "y"], ["y", 7], ["a", "b"])
    with pytest.raises(ValueError, match="model_a is missing"):
        aggregate_battles([None, "y"], ["y", "x"], ["a", "b"])
    with pytest.raises(ValueError, match="models must be strings"):
        aggregate_battles(["x"], ["y"], ["a"], models=["x", "y", 3])


def test_categorical_columns_give_the_same_counts():
    pd = pytest.importorskip("pandas")
    rng = np.random.default_rng(12)
    models = ["m0", "m1", "m2", "m3", "m4"]
    a, b = rng.choice(models, 1_000).tolist(), rng.choice(models, 1_000).tolist()
    o = rng.choice(["a", "b", "tie"], 1_000).tolist()
    from_lists = aggregate_battles(a, b, o)
    from_categories = aggregate_battles(
        pd.Series(a, dtype="category"), pd.Series(b, dtype="category"), pd.Categorical(o)
    )
    assert from_categories.models == from_lists.models
    assert np.array_equal(from_categories.n_battles_by_outcome, from_lists.n_battles_by_outcome)


def test_frame_convenience_matches_sequences():
    pd = pytest.importorskip("pandas")
    frame = pd.DataFrame({"model_a": ["x", "y"], "model_b": ["y", "x"], "outcome": ["a", "tie"]})
    from_frame = aggregate_battle_frame(frame)
    from_lists = aggregate_battles(["x", "y"], ["y", "x"], ["a", "tie"])
    assert from_frame.models == from_lists.models
    assert np.array_equal(from_frame.n_battles_by_outcome, from_lists.n_battles_by_outcome)
