"""Judged battles counted per (unordered model pair, outcome): what every rating is fitted to.

Scaling: battles are aggregated into counts per (unordered model pair, outcome), at most
3 * n_models * (n_models - 1) / 2 cells however many battles there are; a bootstrap sample
redraws those cell counts (`evaluators/ratings.py`).

Outcome labels that are neither verdicts nor known non-verdicts are refused, never silently
dropped; model names must be strings. Model names are encoded once into integer codes
(``pandas.factorize``, hashing each name once) and everything after works on the codes; a
pandas Categorical column is used as it is.

Pure functions: no I/O (numpy and pandas).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

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
