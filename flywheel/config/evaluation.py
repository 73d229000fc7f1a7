"""`evaluation`: the A/B gate a candidate must pass to be promoted (intervals, Bradley-Terry
anchor, automatic or manual approval)."""

from __future__ import annotations

from typing import Literal

from flywheel.config.base import Section, _help


class EvaluationConfig(Section):
    promotion_margin: float = _help(
        "promote only when the win-rate CI lower bound exceeds 0.5 + margin",
        default=0.0,
        ge=0,
        lt=0.5,
    )
    ci: float = _help("confidence level of every interval", default=0.95, gt=0, lt=1)
    bootstrap_samples: int = _help("bootstrap resamples for intervals", default=1000, gt=0)
    anchor_model: str | None = _help(
        "model whose Bradley-Terry rating is fixed (e.g. ref:strong); default: the first reference",
        default=None,
    )
    anchor_rating: float = _help("rating of the anchor model on the Elo scale", default=1000.0)
    seed: int = _help("seed of the bootstraps", default=0)
    approval: Literal["auto", "manual"] = _help(
        "auto promotes a passing candidate at once; manual pauses the run until a person "
        "approves it in the Prefect UI (reject, or no answer in time, keeps the champion)",
        default="auto",
    )
    approval_timeout_s: int = _help(
        "manual approval: seconds to wait for the answer; then the champion is kept and the "
        "reason says the approval timed out",
        default=86400,
        gt=0,
    )
