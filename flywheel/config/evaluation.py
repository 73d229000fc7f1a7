"""`evaluation`: the A/B gate a candidate must pass to be promoted (intervals, Bradley-Terry
anchor, automatic or manual approval, the general-set limits)."""

from __future__ import annotations

from typing import Literal

from pydantic import model_validator

from flywheel.config.base import Section, _help
from flywheel.config.checks import field_problem


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
    general_check: bool = _help(
        "measure champion and candidate on the held-out general set (mean NLL of its good "
        "answers, share of replies collapsing into `Answer: X`) every round where the student "
        "has a local checkpoint; false: not measured, and the general_max_* limits cannot apply",
        default=True,
    )
    general_max_nll_increase: float | None = _help(
        "refuse a candidate whose general-set NLL is more than this share above the champion's "
        "(0.05: 5% higher; 0: any rise); null: reported only",
        default=None,
        ge=0,
    )
    general_max_collapse_share: float | None = _help(
        "refuse a candidate whose share of general-set replies collapsing into the answer "
        "format is above this (0.05: more than 1 in 20; 0: any); null: reported only",
        default=None,
        ge=0,
        le=1,
    )

    @model_validator(mode="after")
    def _check_general_limits(self) -> EvaluationConfig:
        if self.general_check:
            return self
        for name in ("general_max_nll_increase", "general_max_collapse_share"):
            if getattr(self, name) is not None:
                raise field_problem(
                    "is a limit on the general set, but general_check is false, so nothing "
                    "is measured to apply it to",
                    f"set general_check: true, or {name}: null",
                    field=name,
                    value=getattr(self, name),
                )
        return self
