"""Bootstrap Bradley-Terry ratings: flywheel vs FastChat's current algorithm, side by side.

Run from the repository root:

    python -m benchmarks.bench_ratings                      # 100,000 battles (quick)
    python -m benchmarks.bench_ratings --n-battles 1000000  # the headline figure

Both sides get the same battles as a pandas DataFrame of strings (`model_a`, `model_b`,
`winner` with FastChat's labels `model_a`, `model_b`, `tie`, `tie (bothbad)`) and return
ratings with 95% bootstrap intervals from `--n-bootstrap` samples, anchored on the same model.

Ours (evaluators/ratings.py): encode the names once, count battles per (pair, outcome), draw
all multinomial resamples of the counts and fit them together by one batched Newton method.

Peer: FastChat's `compute_bt` + `compute_bootstrap_bt` (fastchat/serve/monitor/
rating_systems.py, 2024-), re-implemented here from its published description:
`pd.factorize` of the names, `np.unique` over (model_a, model_b, outcome) rows for the
counts, Bradley-Terry by scipy's L-BFGS-B on the counts (`gtol` 1e-6, at most 100
iterations), and one L-BFGS-B fit per multinomial resample of the counts. FastChat fits the
resamples in a process pool; here both sides run in one process on one BLAS thread
(`OPENBLAS_NUM_THREADS=1` etc., set before numpy loads), so the ratio compares algorithms.

Prints each side's time split into encoding and fitting, the ratios, the largest rating and
interval differences in Elo, and last one JSON line of figures.
"""

from __future__ import annotations

import os

for _variable in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[_variable] = "1"  # before numpy is imported: one BLAS thread for both sides

import argparse  # noqa: E402
import json  # noqa: E402
import math  # noqa: E402
import time  # noqa: E402
from collections.abc import Callable  # noqa: E402
from typing import Any  # noqa: E402

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from scipy.optimize import minimize  # noqa: E402
from scipy.special import expit  # noqa: E402

from flywheel.evaluators.battle_counts import aggregate_battle_frame  # noqa: E402
from flywheel.evaluators.ratings import bootstrap_ratings  # noqa: E402

ANCHOR_RATING = 1000.0
CI = 0.95
FASTCHAT_LABELS = np.array(["model_a", "model_b", "tie", "tie (bothbad)"], dtype=object)


def draw_battles(n_battles: int, n_models: int, seed: int) -> pd.DataFrame:
    """Synthetic Bradley-Terry battles with FastChat's labels, ~10% ties (a third both bad)."""
    rng = np.random.default_rng(seed)
    models = np.array([f"model-{i:02d}" for i in range(n_models)], dtype=object)
    true_elo = rng.normal(1000.0, 150.0, n_models)
    idx_a = rng.integers(0, n_models, n_battles)
    idx_b = (idx_a + rng.integers(1, n_models, n_battles)) % n_models
    p_a_wins = 1.0 / (1.0 + 10.0 ** ((true_elo[idx_b] - true_elo[idx_a]) / 400.0))
    label = np.where(rng.random(n_battles) < p_a_wins, 0, 1)
    kind = rng.random(n_battles)
    label[kind < 0.10] = 2
    label[kind < 0.03] = 3
    return pd.DataFrame(
        {"model_a": models[idx_a], "model_b": models[idx_b], "winner": FASTCHAT_LABELS[label]}
    )


# --- ours ---------------------------------------------------------------------------------


def run_ours(battles: pd.DataFrame, n_bootstrap: int, anchor: str) -> tuple[dict, dict]:
    """(timings, {model: (rating, ci_low, ci_high)})."""
    started = time.perf_counter()
    counts = aggregate_battle_frame(battles, outcome_column="winner")
    encoded = time.perf_counter()
    ratings = bootstrap_ratings(
        counts, n_samples=n_bootstrap, anchor_model=anchor, anchor_rating=ANCHOR_RATING, ci=CI
    )
    fitted = time.perf_counter()
    timings = {"encode_s": encoded - started, "fit_s": fitted - encoded}
    return timings, {r.model: (r.rating, r.ci_low, r.ci_high) for r in ratings}


# --- peer: FastChat's compute_bt + compute_bootstrap_bt, from its description -------------


def fastchat_preprocess(df: pd.DataFrame) -> tuple[np.ndarray, np.ndarray, list[str], np.ndarray]:
    """Unique (model_a, model_b, outcome) rows and how often each occurs."""
    n_rows = len(df)
    schedule = np.full((n_rows, 3), fill_value=1, dtype=np.int32)  # outcome 1: tie
    model_indices, models = pd.factorize(pd.concat([df["model_a"], df["model_b"]]))
    schedule[:, 0], schedule[:, 1] = model_indices[:n_rows], model_indices[n_rows:]
    schedule[df["winner"] == "model_a", 2] = 2
    schedule[df["winner"] == "model_b", 2] = 0
    matchups_outcomes, weights = np.unique(schedule, return_counts=True, axis=0)
    matchups = matchups_outcomes[:, [0, 1]]
    outcomes = matchups_outcomes[:, 2].astype(np.float64) / 2.0
    return matchups, outcomes, models.to_list(), weights.astype(np.float64)


def fastchat_loss_and_grad(
    ratings: np.ndarray,
    matchups: np.ndarray,
    outcomes: np.ndarray,
    weights: np.ndarray,
    alpha: float,
) -> tuple[float, np.ndarray]:
    matchup_ratings = ratings[matchups]
    logits = alpha * (matchup_ratings[:, 0] - matchup_ratings[:, 1])
    probs = expit(logits)
    loss = -((np.log(probs) * outcomes + np.log(1.0 - probs) * (1.0 - outcomes)) * weights).sum()
    matchups_grads = -alpha * (outcomes - probs) * weights
    model_grad = np.zeros_like(ratings)
    np.add.at(model_grad, matchups[:, [0, 1]], matchups_grads[:, None] * np.array([1.0, -1.0]))
    return loss, model_grad


def fastchat_fit(
    matchups: np.ndarray, outcomes: np.ndarray, weights: np.ndarray, n_models: int, alpha: float
) -> np.ndarray:
    result = minimize(
        fun=fastchat_loss_and_grad,
        x0=np.zeros(n_models, dtype=np.float64),
        args=(matchups, outcomes, weights, alpha),
        jac=True,
        method="L-BFGS-B",
        options={"disp": False, "maxiter": 100, "gtol": 1e-6},
    )
    return result["x"]


def run_peer(battles: pd.DataFrame, n_bootstrap: int, anchor: str) -> tuple[dict, dict]:
    """FastChat's full fit and bootstrap, single process; same anchor and percentiles as ours."""
    started = time.perf_counter()
    matchups, outcomes, models, weights = fastchat_preprocess(battles)
    encoded = time.perf_counter()
    alpha = math.log(10.0)
    full = fastchat_fit(matchups, outcomes, weights, len(models), alpha)
    rng = np.random.default_rng(seed=0)
    resampled = rng.multinomial(len(battles), weights / weights.sum(), size=n_bootstrap)
    boot_weights = resampled.astype(np.float64) / len(battles)
    samples = np.array(
        [fastchat_fit(matchups, outcomes, w, len(models), alpha) for w in boot_weights]
    )
    fitted = time.perf_counter()
    anchor_index = models.index(anchor)
    scale = 400.0
    rating = ANCHOR_RATING + scale * (full - full[anchor_index])
    samples_elo = ANCHOR_RATING + scale * (samples - samples[:, [anchor_index]])
    tail = (1.0 - CI) / 2.0
    low, high = np.quantile(samples_elo, [tail, 1.0 - tail], axis=0)
    timings = {"encode_s": encoded - started, "fit_s": fitted - encoded}
    return timings, {m: (rating[i], low[i], high[i]) for i, m in enumerate(models)}


# --- the run --------------------------------------------------------------------------------


def best_of(repeats: int, fn: Callable[[], tuple[dict, dict]]) -> tuple[dict, dict]:
    """The run with the least total time of `repeats` (the machine may be busy)."""
    runs = [fn() for _ in range(repeats)]
    return min(runs, key=lambda run: sum(run[0].values()))


def largest_differences(ours: dict, peer: dict) -> dict[str, float]:
    """Largest |ours - peer| over models, in Elo, for the ratings and each interval bound."""
    names = ("rating", "ci_low", "ci_high")
    return {
        f"max_{name}_diff_elo": max(abs(ours[m][k] - peer[m][k]) for m in peer)
        for k, name in enumerate(names)
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n-battles", type=int, default=100_000)
    parser.add_argument("--n-models", type=int, default=20)
    parser.add_argument("--n-bootstrap", type=int, default=1_000)
    parser.add_argument("--repeats", type=int, default=1, help="runs per side; the best counts")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    battles = draw_battles(args.n_battles, args.n_models, args.seed)
    anchor = "model-00"
    ours_t, ours = best_of(args.repeats, lambda: run_ours(battles, args.n_bootstrap, anchor))
    peer_t, peer = best_of(args.repeats, lambda: run_peer(battles, args.n_bootstrap, anchor))
    ours_s, peer_s = sum(ours_t.values()), sum(peer_t.values())
    differences = largest_differences(ours, peer)

    figures: dict[str, Any] = {
        "benchmark": "bootstrap_ratings_vs_fastchat",
        "n_battles": args.n_battles,
        "n_models": args.n_models,
        "n_bootstrap": args.n_bootstrap,
        "blas_threads": 1,
        "ours_encode_s": round(ours_t["encode_s"], 3),
        "ours_fit_s": round(ours_t["fit_s"], 3),
        "ours_total_s": round(ours_s, 3),
        "fastchat_encode_s": round(peer_t["encode_s"], 3),
        "fastchat_fit_s": round(peer_t["fit_s"], 3),
        "fastchat_total_s": round(peer_s, 3),
        "speedup_total": round(peer_s / ours_s, 1),
        "speedup_encode": round(peer_t["encode_s"] / ours_t["encode_s"], 1),
        "speedup_fit": round(peer_t["fit_s"] / ours_t["fit_s"], 1),
        **{name: float(f"{value:.3g}") for name, value in differences.items()},
    }
    print(
        f"{args.n_battles:,} battles, {args.n_models} models, {args.n_bootstrap:,} samples, 1 thread"
    )
    print(
        f"flywheel: encode {ours_t['encode_s']:.2f} s + fit {ours_t['fit_s']:.2f} s "
        f"= {ours_s:.2f} s"
    )
    print(
        f"FastChat: encode {peer_t['encode_s']:.2f} s + fit {peer_t['fit_s']:.2f} s "
        f"= {peer_s:.2f} s"
    )
    print(
        f"ratio (FastChat / flywheel): total {peer_s / ours_s:.1f}x, encode "
        f"{figures['speedup_encode']}x, fit {figures['speedup_fit']}x"
    )
    print(
        f"largest difference: rating {differences['max_rating_diff_elo']:.3g} Elo, 95% interval "
        f"bounds {differences['max_ci_low_diff_elo']:.2g} / {differences['max_ci_high_diff_elo']:.2g}"
        " Elo (bootstrap noise: the two draw different resamples)"
    )
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
