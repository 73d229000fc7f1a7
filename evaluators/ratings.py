"""Model ratings from judged battles: Bradley-Terry with bootstrap CIs, and online Elo.

Ratings are in Elo points (`evaluators/bradley_terry.py` fits them; `evaluators/
battle_counts.py` counts the battles they are fitted to). A bootstrap sample redraws the
battles' cell counts from a multinomial, which is the same distribution as resampling the
battle rows, and all samples are fitted together by one batched Newton method. A million
battles and a thousand samples take seconds.

What cannot be estimated is said, not hidden behind a number: a model's interval is
unbounded (``-inf`` or ``inf``) on a side the battles do not bound relative to the anchor, and
``Rating.flags`` says why: ``not_connected_to_anchor`` (no chain of battles links it to the
anchor: its group's ratings are not comparable with the anchor's), ``never_lost`` /
``never_won`` (its rating on that side comes from the prior only), ``unbounded_above`` /
``unbounded_below`` (its group never lost, or never won, against the anchor's side).
``rating_warnings`` turns the flags into sentences.

Pure functions: no I/O (numpy).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from flywheel.evaluators.battle_counts import BattleCounts
from flywheel.evaluators.bradley_terry import (
    ELO_PER_NAT,
    check_fit_inputs,
    fit_samples,
    prior_precision,
)

_BATCH_CELLS = 1_000_000  # n_samples * n_models**2 per fitted chunk (bounds memory)


@dataclass(frozen=True)
class Rating:
    """One model's Bradley-Terry rating, in Elo points.

    ``rating`` is the fit on all battles; ``median``, ``ci_low`` and
    ``ci_high`` are percentiles of the bootstrap distribution, except on a side
    the battles do not bound (relative to the anchor), which is ``-inf`` or
    ``inf``; ``flags`` says why (see the module doc). No flags: estimable.
    """

    model: str
    rating: float
    ci_low: float
    ci_high: float
    median: float
    n_battles: int
    flags: tuple[str, ...] = ()

    @property
    def estimable(self) -> bool:
        return not self.flags


def bootstrap_ratings(
    counts: BattleCounts,
    n_samples: int = 1000,
    seed: int = 0,
    anchor_model: str | None = None,
    anchor_rating: float = 1000.0,
    ci: float = 0.95,
    prior_sd_elo: float = 2000.0,
) -> list[Rating]:
    """Ratings with bootstrap confidence intervals, best first.

    Each of the ``n_samples`` bootstrap samples redraws the battles with
    replacement (as multinomial cell counts) and is refitted with the same
    anchor, so the anchor's interval is a single point. ``ci`` is the central
    coverage of [ci_low, ci_high] (0.95: the 2.5th and 97.5th percentiles).
    The bootstrap measures sampling noise only: a model whose battles all
    ended the same way (say, never lost) gets a narrow interval however few
    battles it had; look at ``n_battles`` too.
    """
    anchor_index = check_fit_inputs(counts, anchor_model, prior_sd_elo)
    if n_samples < 1:
        raise ValueError(f"n_samples must be at least 1; got {n_samples}")
    if not 0.0 < ci < 1.0:
        raise ValueError(f"ci must be strictly between 0 and 1 (e.g. 0.95); got {ci}")

    precision = prior_precision(prior_sd_elo)
    observed = counts.n_battles_by_outcome.astype(np.float64)
    theta_full = fit_samples(counts, observed[None], anchor_index, precision)[0]
    thetas = _bootstrap_thetas(counts, n_samples, seed, anchor_index, precision, theta_full)
    samples_elo = anchor_rating + ELO_PER_NAT * thetas

    tail = (1.0 - ci) / 2.0
    low, median, high = np.quantile(samples_elo, [tail, 0.5, 1.0 - tail], axis=0)
    bounded_below, bounded_above, flags = estimability(counts, anchor_index)
    low = np.where(bounded_below, low, -np.inf)
    high = np.where(bounded_above, high, np.inf)
    n_battles_by_model = counts.n_battles_by_model
    ratings = [
        Rating(
            model=model,
            rating=anchor_rating + ELO_PER_NAT * float(theta_full[i]),
            ci_low=float(low[i]),
            ci_high=float(high[i]),
            median=float(median[i]),
            n_battles=n_battles_by_model[model],
            flags=flags[i],
        )
        for i, model in enumerate(counts.models)
    ]
    return sorted(ratings, key=lambda r: r.rating, reverse=True)


def _bootstrap_thetas(
    counts: BattleCounts,
    n_samples: int,
    seed: int,
    anchor_index: int,
    precision: float,
    theta_full: np.ndarray,
) -> np.ndarray:
    """Log-strengths of `n_samples` multinomial redraws of the cell counts, (n_samples,
    n_models), fitted in chunks of at most _BATCH_CELLS, each started from `theta_full`."""
    rng = np.random.default_rng(seed)
    observed = counts.n_battles_by_outcome.astype(np.float64)
    cell_share = observed.ravel() / observed.sum()
    n_models = len(counts.models)
    chunk = max(1, _BATCH_CELLS // (n_models * n_models))
    thetas = []
    for start in range(0, n_samples, chunk):
        size = min(chunk, n_samples - start)
        resampled = rng.multinomial(counts.n_battles, cell_share, size=size)
        n_by_outcome = resampled.reshape(size, -1, 3).astype(np.float64)
        thetas.append(fit_samples(counts, n_by_outcome, anchor_index, precision, theta_full))
    return np.concatenate(thetas)


def estimability(
    counts: BattleCounts, anchor_index: int = 0
) -> tuple[np.ndarray, np.ndarray, list[tuple[str, ...]]]:
    """Which ratings the battles bound relative to the anchor, and flags saying why not.

    Write u -> v when u won or tied against v at least once. A model's rating is bounded
    above when a chain of such results leads from the anchor to it (it lost to someone
    bounded), and below when a chain leads from it to the anchor. Returns (bounded_below,
    bounded_above, flags) per model; the anchor is bounded on both sides.
    """
    n_models = len(counts.models)
    wins = _win_matrices(counts, counts.n_battles_by_outcome[None].astype(np.float64))[0]
    scored = wins > 0
    reach = _reachability(scored)
    linked = _reachability(scored | scored.T)[anchor_index]
    bounded_above = reach[anchor_index].copy()
    bounded_below = reach[:, anchor_index].copy()
    has_won, has_lost = scored.any(axis=1), scored.any(axis=0)
    flags: list[tuple[str, ...]] = []
    for i in range(n_models):
        model_flags: list[str] = []
        if not linked[i]:
            model_flags.append("not_connected_to_anchor")
        else:
            if not has_lost[i]:
                model_flags.append("never_lost")
            elif not bounded_above[i]:
                model_flags.append("unbounded_above")
            if not has_won[i]:
                model_flags.append("never_won")
            elif not bounded_below[i]:
                model_flags.append("unbounded_below")
        flags.append(tuple(model_flags))
    return bounded_below, bounded_above, flags


def rating_warnings(ratings: Sequence[Rating]) -> list[str]:
    """One sentence per kind of flag, naming the models (empty when every rating is estimable)."""
    reasons = {
        "not_connected_to_anchor": "no chain of battles links them to the anchor model, so "
        "their ratings are not comparable with the anchor's (intervals unbounded)",
        "never_lost": "never lost: the upper side of their rating comes from the prior only "
        "(interval unbounded above)",
        "never_won": "never won: the lower side of their rating comes from the prior only "
        "(interval unbounded below)",
        "unbounded_above": "their group never lost to the anchor's side: unbounded above",
        "unbounded_below": "their group never won against the anchor's side: unbounded below",
    }
    warnings = []
    for flag, reason in reasons.items():
        models = [r.model for r in ratings if flag in r.flags]
        if models:
            warnings.append(f"{', '.join(models)}: {reason}")
    return warnings


def _reachability(edges: np.ndarray) -> np.ndarray:
    """reach[u, v]: a path of `edges` leads from u to v (every node reaches itself)."""
    reach = edges | np.eye(len(edges), dtype=bool)
    while True:
        longer = (reach.astype(np.int64) @ reach.astype(np.int64)) > 0
        if (longer == reach).all():
            return reach
        reach = longer


def online_elo(
    model_a: Sequence[str],
    model_b: Sequence[str],
    outcome: Sequence[str],
    k: float = 4.0,
    initial: float = 1000.0,
) -> dict[str, float]:
    """Classic sequential Elo in points, updating after each battle in the given order.

    Every model starts at ``initial``; after a battle each side moves by
    ``k * (score - expected)`` with score 1, 0.5 or 0. Outcomes other than
    "a", "b" and "tie" are skipped. Unlike Bradley-Terry, the result depends
    on the order of the battles; it is here for comparison.
    """
    names_a, names_b, outcomes = list(model_a), list(model_b), list(outcome)
    if not len(names_a) == len(names_b) == len(outcomes):
        raise ValueError("model_a, model_b and outcome must have one element per battle")
    score_by_outcome = {"a": 1.0, "b": 0.0, "tie": 0.5}
    ratings: dict[str, float] = {}
    n_rated = 0
    for a, b, result in zip(names_a, names_b, outcomes, strict=True):
        score_a = score_by_outcome.get(result)
        if score_a is None or a == b:
            continue
        rating_a, rating_b = ratings.get(a, initial), ratings.get(b, initial)
        expected_a = 1.0 / (1.0 + 10.0 ** ((rating_b - rating_a) / 400.0))
        ratings[a] = rating_a + k * (score_a - expected_a)
        ratings[b] = rating_b - k * (score_a - expected_a)
        n_rated += 1
    if n_rated == 0:
        raise ValueError(f"no decisive or tied battles to rate among {len(outcomes)} given")
    return dict(sorted(ratings.items()))


def _win_matrices(counts: BattleCounts, n_by_outcome: np.ndarray) -> np.ndarray:
    """Win matrices from (n_samples, n_pairs, 3) counts: W[s, i, j] = wins of i over j.

    Ties add half a win to each side.
    """
    n_samples, n_models = n_by_outcome.shape[0], len(counts.models)
    half_ties = 0.5 * n_by_outcome[:, :, 2]
    wins = np.zeros((n_samples, n_models, n_models))
    wins[:, counts.pair_low, counts.pair_high] = n_by_outcome[:, :, 0] + half_ties
    wins[:, counts.pair_high, counts.pair_low] = n_by_outcome[:, :, 1] + half_ties
    return wins
