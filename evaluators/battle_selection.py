"""Which train battles the judge decides under a budget (`judge.selection`): pure arithmetic.

For each battle, every reward model of an ensemble gives the probability that the reference's
answer beats the champion's (the logistic of the difference of its standardised scores, the
Bradley-Terry model a reward model is trained under). A battle's uncertainty is the binary
entropy of the members' mean probability: 1 bit when the ensemble, on average, cannot tell the
answers apart or its members contradict each other, 0 when all of them are sure. The likeliest
losses are the battles of highest mean probability (the champion's likeliest SFT targets).
"""

from __future__ import annotations

import numpy as np


def reference_win_probabilities(
    champion_scores: np.ndarray, reference_scores: np.ndarray
) -> np.ndarray:
    """(models x battles) P(reference beats champion) from each model's standardised scores of
    the two answers, arrays of the same shape."""
    return 1.0 / (1.0 + np.exp(-(np.asarray(reference_scores) - np.asarray(champion_scores))))


def battle_uncertainty(win_probabilities: np.ndarray) -> np.ndarray:
    """The binary entropy, in bits, of the models' mean win probability, per battle."""
    p = np.clip(np.asarray(win_probabilities, dtype=np.float64).mean(axis=0), 1e-12, 1 - 1e-12)
    return -(p * np.log2(p) + (1 - p) * np.log2(1 - p))


def highest(values: np.ndarray | list[float], budget: int) -> list[int]:
    """Indices of the `budget` battles of highest value (the most uncertain, or the likeliest
    losses; ties: the earlier battle), in order."""
    order = np.argsort(-np.asarray(values, dtype=np.float64), kind="stable")
    return sorted(order[:budget].tolist())


def random_choice(n_battles: int, budget: int, seed: int) -> list[int]:
    """Indices of a seeded random `budget` of `n_battles` battles, in order."""
    if budget >= n_battles:
        return list(range(n_battles))
    chosen = np.random.default_rng([seed, 7]).choice(n_battles, size=budget, replace=False)
    return sorted(chosen.tolist())
