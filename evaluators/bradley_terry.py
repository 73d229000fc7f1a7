"""Bradley-Terry maximum-likelihood ratings, fitted by a batched damped Newton method.

All ratings are on the Elo scale: a 400-point gap means 10:1 odds of winning,
so P(i beats j) = 1 / (1 + 10 ** ((rating_j - rating_i) / 400)). A tie counts
as half a win for each side.

Batching: many sets of pair counts (the bootstrap's samples, `evaluators/ratings.py`) are
fitted together over an (n_samples, n_models) parameter array (`fit_samples`).

Regularisation: the fit maximises the likelihood plus a weak Gaussian prior on
the spread of the ratings around their mean (standard deviation
``prior_sd_elo``, default 2000 Elo). The prior keeps the fit finite for a model
that never lost (or never won), and for comparison graphs that are not
connected; for models with a few dozen battles or more it moves ratings by
well under one Elo point. Because it only looks at rating differences, the
anchoring stays a pure shift.

Pure functions: no I/O (numpy).
"""

from __future__ import annotations

import math

import numpy as np

from flywheel.evaluators.battle_counts import BattleCounts

ELO_PER_NAT = 400.0 / math.log(10.0)
"""Elo points per natural-log unit of odds (400 Elo = a factor of 10)."""

_MAX_NEWTON_STEPS = 200
_MAX_HALVINGS = 40
_STEP_TOLERANCE_NATS = 1e-10


def fit_bradley_terry(
    counts: BattleCounts,
    anchor_model: str | None = None,
    anchor_rating: float = 1000.0,
    prior_sd_elo: float = 2000.0,
) -> dict[str, float]:
    """Bradley-Terry maximum-likelihood ratings in Elo points, keyed by model.

    ``anchor_model`` (default: ``counts.models[0]``) gets exactly
    ``anchor_rating``. ``prior_sd_elo`` is the weak regularising prior (see
    the module docstring); it must be positive and finite.
    """
    anchor_index = check_fit_inputs(counts, anchor_model, prior_sd_elo)
    n_by_outcome = counts.n_battles_by_outcome[None].astype(np.float64)
    theta = fit_samples(counts, n_by_outcome, anchor_index, prior_precision(prior_sd_elo))[0]
    return {
        model: anchor_rating + ELO_PER_NAT * float(t)
        for model, t in zip(counts.models, theta, strict=True)
    }


def fit_samples(
    counts: BattleCounts,
    n_by_outcome: np.ndarray,
    anchor_index: int,
    precision: float,
    start: np.ndarray | None = None,
) -> np.ndarray:
    """Log-strengths in nats, (n_samples, n_models) with the anchor's at 0, fitted to each of
    the (n_samples, n_pairs, 3) pair counts of `counts`' pairs; `start`: a first guess."""
    return _fit_batch(_PairData(counts, n_by_outcome), anchor_index, precision, start)


def check_fit_inputs(counts: BattleCounts, anchor_model: str | None, prior_sd_elo: float) -> int:
    """Validate a fit request; return the anchor's index."""
    if counts.n_battles == 0:
        raise ValueError(
            f"no decisive or tied battles to rate ({counts.n_dropped} dropped as "
            "inconsistent/unparsed/error or self-play)"
        )
    if not (prior_sd_elo > 0.0 and math.isfinite(prior_sd_elo)):
        raise ValueError(f"prior_sd_elo must be positive and finite; got {prior_sd_elo}")
    if anchor_model is None:
        return 0
    if anchor_model not in counts.models:
        raise ValueError(f"anchor_model {anchor_model!r} is not one of {list(counts.models)}")
    return counts.models.index(anchor_model)


def prior_precision(prior_sd_elo: float) -> float:
    """Prior precision in 1/nats**2 for a prior standard deviation in Elo."""
    return (ELO_PER_NAT / prior_sd_elo) ** 2


class _PairData:
    """Per-sample pair counts in the form the Newton steps use (S samples, P pairs, n models)."""

    def __init__(self, counts: BattleCounts, n_by_outcome: np.ndarray) -> None:
        half_ties = 0.5 * n_by_outcome[:, :, 2]
        self.low, self.high = counts.pair_low, counts.pair_high
        self.wins_low = n_by_outcome[:, :, 0] + half_ties  # (S, P)
        self.wins_high = n_by_outcome[:, :, 1] + half_ties
        self.games = self.wins_low + self.wins_high
        n_models = len(counts.models)
        self.incidence = np.zeros((len(self.low), n_models))  # +1 low, -1 high
        self.incidence[np.arange(len(self.low)), self.low] = 1.0
        self.incidence[np.arange(len(self.low)), self.high] = -1.0
        self.n_models = n_models

    def gap(self, theta: np.ndarray) -> np.ndarray:
        """theta_low - theta_high per sample and pair, (S, P)."""
        return theta[:, self.low] - theta[:, self.high]


def _objective(theta: np.ndarray, pairs: _PairData, precision: float) -> np.ndarray:
    """Negative log-posterior per sample, for theta (n_samples, n_models) in nats.

    Per pair: wins_low * softplus(-gap) + wins_high * softplus(gap), written with one
    softplus as games * softplus(-gap) + wins_high * gap.
    """
    gap = pairs.gap(theta)
    neg_log_lik = (pairs.games * np.logaddexp(0.0, -gap) + pairs.wins_high * gap).sum(axis=1)
    centred = theta - theta.mean(axis=1, keepdims=True)
    return neg_log_lik + 0.5 * precision * (centred**2).sum(axis=1)


def _fit_batch(
    pairs: _PairData,
    anchor_index: int,
    precision: float,
    start: np.ndarray | None = None,
) -> np.ndarray:
    """Batched damped Newton over the samples of `pairs`.

    Returns log-strengths in nats, shape (n_samples, n_models), with the
    anchor's held at 0. The objective is strictly convex in the free
    coordinates, so Newton with step halving converges from any start.
    """
    n_samples, n_models = pairs.games.shape[0], pairs.n_models
    theta = np.zeros((n_samples, n_models))
    if start is not None:
        theta[:] = start - start[anchor_index]
    if n_models == 1:
        return theta
    free = np.delete(np.arange(n_models), anchor_index)
    diagonal = np.arange(n_models)
    abs_incidence = np.abs(pairs.incidence)
    centring = (np.eye(n_models) - 1.0 / n_models)[free[:, None], free[None, :]]
    value = _objective(theta, pairs, precision)
    for _ in range(_MAX_NEWTON_STEPS):
        p_low = 1.0 / (1.0 + np.exp(-pairs.gap(theta)))  # P(low beats high)
        gradient = (pairs.games * p_low - pairs.wins_low) @ pairs.incidence
        gradient += precision * (theta - theta.mean(axis=1, keepdims=True))
        weight = pairs.games * p_low * (1.0 - p_low)
        hessian = np.zeros((n_samples, n_models, n_models))
        hessian[:, pairs.low, pairs.high] = -weight
        hessian[:, pairs.high, pairs.low] = -weight
        hessian[:, diagonal, diagonal] = weight @ abs_incidence
        hessian = hessian[:, free[:, None], free[None, :]] + precision * centring
        step = np.zeros_like(theta)
        step[:, free] = -np.linalg.solve(hessian, gradient[:, free, None])[:, :, 0]
        # Halve the step where it does not decrease the objective.
        step_size = np.ones(n_samples)
        for _ in range(_MAX_HALVINGS):
            trial = theta + step_size[:, None] * step
            trial_value = _objective(trial, pairs, precision)
            worse = trial_value > value + 1e-12 * np.abs(value)
            if not worse.any():
                break
            step_size = np.where(worse, 0.5 * step_size, step_size)
        else:
            trial = np.where(worse[:, None], theta, trial)
            trial_value = np.where(worse, value, trial_value)
        largest_move = float(np.max(np.abs(trial - theta)))
        theta, value = trial, trial_value
        if largest_move < _STEP_TOLERANCE_NATS:
            break
    return theta
