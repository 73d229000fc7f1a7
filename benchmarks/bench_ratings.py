"""Bootstrap Bradley-Terry ratings: aggregated + batched vs refitting per-battle rows.

Run from the repository root:

    python -m benchmarks.bench_ratings            # 1,000,000 battles, 20 models, 1,000 samples

Ours (evaluators/ratings.py): aggregate battles into per-pair outcome counts,
draw 1,000 multinomial resamples of the counts, and fit them all with one
batched Newton method.

Baseline (the classic LMSYS arena notebook recipe): one design-matrix row per
battle (+1 for model A, -1 for model B, anchor column dropped), a logistic
regression fitted with scipy's L-BFGS-B on the full data, and again on every
bootstrap resample of the rows. Only ``--baseline-fits`` resampled fits are
timed; the time for all samples is scaled up from them (the output says so).

Each side is timed without tracemalloc, then run again under tracemalloc for
its peak traced memory (numpy buffers included). Prints a human summary and,
last, one JSON line of figures.
"""

from __future__ import annotations

import argparse
import json
import resource
import time
import tracemalloc
from collections.abc import Callable

import numpy as np
from scipy.optimize import minimize

from flywheel.evaluators.ratings import (
    ELO_PER_NAT,
    aggregate_battles,
    bootstrap_ratings,
    fit_bradley_terry,
)

ANCHOR_RATING = 1000.0


def draw_battles(
    n_battles: int, n_models: int, seed: int
) -> tuple[list[str], list[str], list[str]]:
    """Synthetic Bradley-Terry battles: ~10% ties, ~2% inconsistent (dropped)."""
    rng = np.random.default_rng(seed)
    models = [f"model-{i:02d}" for i in range(n_models)]
    true_elo = rng.normal(1000.0, 150.0, n_models)
    idx_a = rng.integers(0, n_models, n_battles)
    idx_b = (idx_a + rng.integers(1, n_models, n_battles)) % n_models
    p_a_wins = 1.0 / (1.0 + 10.0 ** ((true_elo[idx_b] - true_elo[idx_a]) / 400.0))
    outcome = np.where(rng.random(n_battles) < p_a_wins, "a", "b").astype(object)
    kind = rng.random(n_battles)
    outcome[kind < 0.10] = "tie"
    outcome[kind > 0.98] = "inconsistent"
    names = np.array(models, dtype=object)
    return names[idx_a].tolist(), names[idx_b].tolist(), outcome.tolist()


def run_ours(battles: tuple[list[str], list[str], list[str]], n_bootstrap: int) -> dict[str, float]:
    """Aggregate, then fit the full data and all bootstrap samples; ratings in Elo."""
    counts = aggregate_battles(*battles)
    ratings = bootstrap_ratings(counts, n_samples=n_bootstrap, anchor_rating=ANCHOR_RATING)
    return {r.model: r.rating for r in ratings}


def build_design(
    battles: tuple[list[str], list[str], list[str]],
) -> tuple[list[str], np.ndarray, np.ndarray]:
    """Baseline rows: X (n_battles, n_models - 1) with +1/-1, y = score of A (tie = 0.5)."""
    model_a, model_b, outcome = battles
    models = sorted(set(model_a) | set(model_b))
    index = {m: i for i, m in enumerate(models)}
    score = {"a": 1.0, "b": 0.0, "tie": 0.5}
    rows = [(index[a], index[b], score[o]) for a, b, o in zip(*battles, strict=True) if o in score]
    idx_a, idx_b, y = (np.array(col) for col in zip(*rows, strict=True))
    design = np.zeros((len(y), len(models)))
    design[np.arange(len(y)), idx_a] = 1.0
    design[np.arange(len(y)), idx_b] = -1.0
    return models, design[:, 1:], y.astype(np.float64)  # anchor = first model, held at 0


def fit_logistic(design: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Per-battle logistic regression (no intercept) by L-BFGS-B; log-strengths in nats."""

    def loss_and_gradient(theta: np.ndarray) -> tuple[float, np.ndarray]:
        logits = design @ theta
        loss = np.mean(np.logaddexp(0.0, logits) - y * logits)
        gradient = design.T @ (1.0 / (1.0 + np.exp(-logits)) - y) / len(y)
        return float(loss), gradient

    start = np.zeros(design.shape[1])
    options = {"maxiter": 1000, "gtol": 1e-9, "ftol": 1e-15}
    fitted = minimize(loss_and_gradient, start, jac=True, method="L-BFGS-B", options=options)
    return fitted.x


def run_baseline_fits(design: np.ndarray, y: np.ndarray, n_fits: int, seed: int) -> None:
    """Refit on ``n_fits`` row resamples, as the per-battle bootstrap does."""
    rng = np.random.default_rng(seed)
    for _ in range(n_fits):
        rows = rng.integers(0, len(y), len(y))
        fit_logistic(design[rows], y[rows])


def timed(fn: Callable[[], object]) -> tuple[object, float]:
    """Result and wall time in seconds."""
    start = time.perf_counter()
    result = fn()
    return result, time.perf_counter() - start


def peak_mib(fn: Callable[[], object]) -> float:
    """Peak traced memory of one call, in MiB."""
    tracemalloc.start()
    tracemalloc.reset_peak()
    fn()
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    return peak / 2**20


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n-battles", type=int, default=1_000_000)
    parser.add_argument("--n-models", type=int, default=20)
    parser.add_argument("--n-bootstrap", type=int, default=1_000)
    parser.add_argument("--baseline-fits", type=int, default=3, help="resampled fits to time")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    battles = draw_battles(args.n_battles, args.n_models, args.seed)

    # Ours: aggregation and the full bootstrap, timed separately.
    counts, aggregate_s = timed(lambda: aggregate_battles(*battles))
    _, bootstrap_s = timed(lambda: bootstrap_ratings(counts, n_samples=args.n_bootstrap))
    ours_s = aggregate_s + bootstrap_s
    ours_peak = peak_mib(lambda: run_ours(battles, args.n_bootstrap))
    ours_mle = fit_bradley_terry(counts, anchor_rating=ANCHOR_RATING)

    # Baseline: design matrix, full-data fit, a few resampled fits scaled up.
    (models, design, y), design_s = timed(lambda: build_design(battles))
    theta, full_fit_s = timed(lambda: fit_logistic(design, y))
    _, fits_s = timed(lambda: run_baseline_fits(design, y, args.baseline_fits, args.seed))
    per_fit_s = fits_s / args.baseline_fits
    baseline_s = design_s + full_fit_s + per_fit_s * args.n_bootstrap
    baseline_peak = peak_mib(
        lambda: run_baseline_fits(*build_design(battles)[1:], n_fits=1, seed=args.seed)
    )
    baseline_mle = dict(zip(models, ANCHOR_RATING + ELO_PER_NAT * np.r_[0.0, theta], strict=True))
    max_diff_elo = max(abs(ours_mle[m] - baseline_mle[m]) for m in models)

    figures = {
        "benchmark": "bootstrap_ratings",
        "n_battles": args.n_battles,
        "n_battles_rated": counts.n_battles,
        "n_models": args.n_models,
        "n_bootstrap": args.n_bootstrap,
        "ours_aggregate_s": round(aggregate_s, 3),
        "ours_bootstrap_s": round(bootstrap_s, 3),
        "ours_total_s": round(ours_s, 3),
        "ours_peak_mib": round(ours_peak, 1),
        "baseline_fits_timed": args.baseline_fits,
        "baseline_s_per_fit": round(per_fit_s, 3),
        "baseline_total_s_extrapolated": round(baseline_s, 1),
        "baseline_peak_mib": round(baseline_peak, 1),
        "speedup": round(baseline_s / ours_s, 1),
        "max_rating_diff_elo": float(f"{max_diff_elo:.3g}"),
        "process_maxrss_mib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
    }
    print(f"{args.n_battles:,} battles, {args.n_models} models, {args.n_bootstrap:,} samples")
    print(
        f"ours:     aggregate {aggregate_s:.2f} s + bootstrap {bootstrap_s:.2f} s "
        f"= {ours_s:.2f} s, peak {ours_peak:.0f} MiB"
    )
    print(
        f"baseline: design {design_s:.2f} s + full fit {full_fit_s:.2f} s + "
        f"{per_fit_s:.2f} s/fit x {args.n_bootstrap:,} = {baseline_s:.0f} s "
        f"(extrapolated from {args.baseline_fits} timed fits), peak {baseline_peak:.0f} MiB"
    )
    print(f"speedup {baseline_s / ours_s:.0f}x; largest MLE difference {max_diff_elo:.2g} Elo")
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
