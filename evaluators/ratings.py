"""Model ratings from judged battles: Bradley-Terry with bootstrap CIs, and online Elo.

All ratings are on the Elo scale: a 400-point gap means 10:1 odds of winning,
so P(i beats j) = 1 / (1 + 10 ** ((rating_j - rating_i) / 400)). A tie counts
as half a win for each side.

Scaling: battles are first aggregated into counts per (unordered model pair,
outcome), at most 3 * n_models * (n_models - 1) / 2 cells however many battles
there are. A bootstrap sample redraws those cell counts from a multinomial,
which is the same distribution as resampling the battle rows, and all samples
are fitted together by one batched Newton method over an (n_samples, n_models)
parameter array. A million battles and a thousand samples take seconds.

Regularisation: the fit maximises the likelihood plus a weak Gaussian prior on
the spread of the ratings around their mean (standard deviation
``prior_sd_elo``, default 2000 Elo). The prior keeps the fit finite for a model
that never lost (or never won), and for comparison graphs that are not
connected; for models with a few dozen battles or more it moves ratings by
well under one Elo point. Because it only looks at rating differences, the
anchoring stays a pure shift.

What cannot be estimated is said, not hidden behind a number: a model's interval is
unbounded (``-inf`` or ``inf``) on a side the battles do not bound relative to the anchor, and
``Rating.flags`` says why: ``not_connected_to_anchor`` (no chain of battles links it to the
anchor: its group's ratings are not comparable with the anchor's), ``never_lost`` /
``never_won`` (its rating on that side comes from the prior only), ``unbounded_above`` /
``unbounded_below`` (its group never lost, or never won, against the anchor's side).
``rating_warnings`` turns the flags into sentences. Outcome labels that are neither verdicts
nor known non-verdicts are refused, never silently dropped; model names must be strings.

Model names are encoded once into integer codes (``pandas.factorize``, hashing each name once)
and everything after works on the codes; a pandas Categorical column is used as it is.

Pure functions: no I/O (numpy and pandas).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

ELO_PER_NAT = 400.0 / math.log(10.0)
"""Elo points per natural-log unit of odds (400 Elo = a factor of 10)."""

OUTCOME_CODES: dict[str, int] = {
    "a": 0,
    "b": 1,
    "tie": 2,
    "model_a": 0,  # FastChat / Chatbot Arena labels
    "model_b": 1,
    "tie (bothbad)": 2,
}
"""Battle outcomes that are verdicts: the winning side, or a tie (flywheel's or FastChat's)."""

NOT_A_VERDICT: frozenset[str] = frozenset({"inconsistent", "unparsed", "error"})
"""Outcomes that are known not to be verdicts: dropped and counted in ``n_dropped``.
Any other label is refused (``ValueError``), so a typo or another tool's labels never vanish."""

_MAX_NEWTON_STEPS = 200
_MAX_HALVINGS = 40
_STEP_TOLERANCE_NATS = 1e-10
_BATCH_CELLS = 1_000_000  # n_samples * n_models**2 per fitted chunk (bounds memory)


@dataclass(frozen=True)
class BattleCounts:
    """Battles aggregated per (unordered model pair, outcome).

    Grain: one row per model pair (low, high) with low < high as indices into
    ``models``; ``n_battles_by_outcome[p]`` holds (low won, high won, tie).
    Which side was shown as "A" does not matter to Bradley-Terry, so it is
    folded away.
    """

    models: tuple[str, ...]
    pair_low: np.ndarray  # (n_pairs,) int64 index into models
    pair_high: np.ndarray  # (n_pairs,) int64 index into models
    n_battles_by_outcome: np.ndarray  # (n_pairs, 3) int64: low won, high won, tie
    n_dropped: int  # battles with another outcome ("inconsistent", "error", ...) or self-play

    @property
    def n_battles(self) -> int:
        """Number of battles kept (decisive or tied)."""
        return int(self.n_battles_by_outcome.sum())

    @property
    def n_battles_by_model(self) -> dict[str, int]:
        """Number of kept battles each model took part in."""
        per_pair = self.n_battles_by_outcome.sum(axis=1)
        totals = np.zeros(len(self.models), dtype=np.int64)
        np.add.at(totals, self.pair_low, per_pair)
        np.add.at(totals, self.pair_high, per_pair)
        return {model: int(n) for model, n in zip(self.models, totals, strict=True)}


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


def aggregate_battles(
    model_a: Sequence[str],
    model_b: Sequence[str],
    outcome: Sequence[str],
    models: Sequence[str] | None = None,
) -> BattleCounts:
    """Count battles per (model pair, outcome); one input element per battle.

    ``outcome`` is the winning side: "a", "b" or "tie" (FastChat's "model_a",
    "model_b", "tie" and "tie (bothbad)" are read too). "inconsistent",
    "unparsed" and "error" battles, and battles of a model against itself, are
    dropped and counted in ``n_dropped``; any other label raises ValueError
    naming it. Model names must be strings. ``models`` fixes the model order
    (and may list models without battles); by default the models are sorted by
    name, so the result does not depend on the order of the battles. Each input
    may be a sequence, a numpy array or a pandas Series (a Categorical one is
    used as its codes).
    """
    n_battles = _check_lengths(model_a, model_b, outcome)
    model_tuple, (codes_a, index_a), (codes_b, index_b) = _encode_models(model_a, model_b, models)
    codes_o, outcome_of_label = _encode_outcomes(outcome, n_battles)

    # One pass over the battles: count each (name A, name B, label) combination, then map the
    # few combinations to (model A, model B, outcome) with outcome 3 = not a verdict.
    n_a, n_b, n_labels = len(index_a), len(index_b), len(outcome_of_label)
    combination = (codes_a * n_b + codes_b) * n_labels + codes_o
    n_by_combination = np.bincount(combination, minlength=n_a * n_b * n_labels)
    n_models = len(model_tuple)
    by_side = np.zeros((n_models, n_models, 4), dtype=np.int64)
    np.add.at(
        by_side,
        (index_a[:, None, None], index_b[None, :, None], (outcome_of_label & 3)[None, None, :]),
        n_by_combination.reshape(n_a, n_b, n_labels),
    )
    n_self_play = int(np.trace(by_side[:, :, :3]).sum())
    n_dropped = int(by_side[:, :, 3].sum()) + n_self_play

    # Fold sides so that low < high; "a won" becomes "low won" or "high won".
    low, high = np.triu_indices(n_models, 1)
    folded = np.stack(
        [
            by_side[low, high, 0] + by_side[high, low, 1],
            by_side[low, high, 1] + by_side[high, low, 0],
            by_side[low, high, 2] + by_side[high, low, 2],
        ],
        axis=1,
    ).reshape(-1, 3)
    played = folded.sum(axis=1) > 0
    return BattleCounts(
        models=model_tuple,
        pair_low=low[played].astype(np.int64),
        pair_high=high[played].astype(np.int64),
        n_battles_by_outcome=folded[played].astype(np.int64),
        n_dropped=n_dropped,
    )


def _check_lengths(model_a: Any, model_b: Any, outcome: Any) -> int:
    lengths = len(model_a), len(model_b), len(outcome)
    if not lengths[0] == lengths[1] == lengths[2]:
        raise ValueError(
            f"model_a, model_b and outcome must have one element per battle; got lengths "
            f"{lengths[0]}, {lengths[1]}, {lengths[2]}"
        )
    return lengths[0]


def _factorize(values: Any) -> tuple[np.ndarray, np.ndarray]:
    """Integer codes (-1 for a missing value) and the distinct values, each hashed once."""
    if isinstance(values, pd.Series | pd.Categorical):
        codes, uniques = pd.factorize(values)
    else:
        array = values if isinstance(values, np.ndarray) else np.asarray(list(values), dtype=object)
        codes, uniques = pd.factorize(array.astype(object, copy=False))
    return np.asarray(codes, dtype=np.int64), np.asarray(uniques, dtype=object)


def _encode_models(
    model_a: Any, model_b: Any, models: Sequence[str] | None
) -> tuple[tuple[str, ...], tuple[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]]:
    """The model order, and per side each battle's name code with each code's model index."""
    codes_a, names_a = _factorize(model_a)
    codes_b, names_b = _factorize(model_b)
    for side, codes, names in (("model_a", codes_a, names_a), ("model_b", codes_b, names_b)):
        _require_string_names(side, codes, names)
    seen = sorted(set(names_a.tolist()) | set(names_b.tolist()))
    if models is None:
        models = seen
    model_tuple = tuple(models)
    bad = [m for m in model_tuple if not isinstance(m, str)]
    if bad:
        raise ValueError(
            f"models must be strings; got {bad[0]!r} ({type(bad[0]).__name__}). Fix: pass "
            "model names as str (e.g. convert ids with str())"
        )
    if len(set(model_tuple)) != len(model_tuple):
        raise ValueError(f"models must be unique; got {list(model_tuple)}")
    index = {model: i for i, model in enumerate(model_tuple)}
    unknown = set(seen) - set(index)
    if unknown:
        raise ValueError(f"battles name models missing from `models`: {sorted(unknown)[:5]}")
    index_a = np.array([index[m] for m in names_a.tolist()], dtype=np.int64)
    index_b = np.array([index[m] for m in names_b.tolist()], dtype=np.int64)
    return model_tuple, (codes_a, index_a), (codes_b, index_b)


def _require_string_names(side: str, codes: np.ndarray, names: np.ndarray) -> None:
    """A clear error for a missing or non-string model name, naming its first battle."""
    missing = np.flatnonzero(codes < 0)
    if missing.size:
        raise ValueError(
            f"{side} is missing (None/NaN) in {missing.size} battles, first at battle "
            f"{int(missing[0])}. Fix: drop those battles or name their models"
        )
    for i, name in enumerate(names.tolist()):
        if not isinstance(name, str):
            first = int(np.argmax(codes == i))
            raise ValueError(
                f"model names must be strings; {side} holds {name!r} "
                f"({type(name).__name__}), first at battle {first}. Fix: pass model names as "
                "str (e.g. convert ids with str())"
            )


def _encode_outcomes(outcome: Any, n_battles: int) -> tuple[np.ndarray, np.ndarray]:
    """Each battle's label code, and each label's outcome: 0 side A won, 1 side B won, 2 tie,
    -1 not a verdict."""
    codes, labels = _factorize(outcome)
    label_codes = np.full(len(labels), -1, dtype=np.int64)
    unknown: list[int] = []
    for i, label in enumerate(labels.tolist()):
        if isinstance(label, str) and label in OUTCOME_CODES:
            label_codes[i] = OUTCOME_CODES[label]
        elif not (isinstance(label, str) and label in NOT_A_VERDICT):
            unknown.append(i)
    n_missing = int((codes < 0).sum())
    if unknown or n_missing:
        n_refused = int(np.isin(codes, unknown).sum()) + n_missing
        shown = [repr(labels[i]) for i in unknown[:5]] + (["None/NaN"] if n_missing else [])
        raise ValueError(
            f"outcome labels not recognised: {', '.join(shown)} ({n_refused} of {n_battles} "
            f"battles). Accepted: {', '.join(repr(k) for k in OUTCOME_CODES)}; dropped as "
            f"not a verdict: {', '.join(repr(k) for k in sorted(NOT_A_VERDICT))}. Fix: map "
            "the labels to these before rating"
        )
    return codes, label_codes


def aggregate_battle_frame(
    frame: Any,
    model_a_column: str = "model_a",
    model_b_column: str = "model_b",
    outcome_column: str = "outcome",
    models: Sequence[str] | None = None,
) -> BattleCounts:
    """``aggregate_battles`` on the columns of a pandas DataFrame (one row per battle)."""
    return aggregate_battles(
        frame[model_a_column], frame[model_b_column], frame[outcome_column], models=models
    )


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
    anchor_index = _check_fit_inputs(counts, anchor_model, prior_sd_elo)
    pairs = _PairData(counts, counts.n_battles_by_outcome[None].astype(np.float64))
    theta = _fit_batch(pairs, anchor_index, _prior_precision(prior_sd_elo))[0]
    return {
        model: anchor_rating + ELO_PER_NAT * float(t)
        for model, t in zip(counts.models, theta, strict=True)
    }


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
    anchor_index = _check_fit_inputs(counts, anchor_model, prior_sd_elo)
    if n_samples < 1:
        raise ValueError(f"n_samples must be at least 1; got {n_samples}")
    if not 0.0 < ci < 1.0:
        raise ValueError(f"ci must be strictly between 0 and 1 (e.g. 0.95); got {ci}")

    precision = _prior_precision(prior_sd_elo)
    observed = counts.n_battles_by_outcome.astype(np.float64)
    theta_full = _fit_batch(_PairData(counts, observed[None]), anchor_index, precision)[0]

    rng = np.random.default_rng(seed)
    cell_share = observed.ravel() / observed.sum()
    n_models = len(counts.models)
    chunk = max(1, _BATCH_CELLS // (n_models * n_models))
    thetas = []
    for start in range(0, n_samples, chunk):
        size = min(chunk, n_samples - start)
        resampled = rng.multinomial(counts.n_battles, cell_share, size=size)
        pairs = _PairData(counts, resampled.reshape(size, -1, 3).astype(np.float64))
        thetas.append(_fit_batch(pairs, anchor_index, precision, start=theta_full))
    samples_elo = anchor_rating + ELO_PER_NAT * np.concatenate(thetas)

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


def _check_fit_inputs(counts: BattleCounts, anchor_model: str | None, prior_sd_elo: float) -> int:
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


def _prior_precision(prior_sd_elo: float) -> float:
    """Prior precision in 1/nats**2 for a prior standard deviation in Elo."""
    return (ELO_PER_NAT / prior_sd_elo) ** 2


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
