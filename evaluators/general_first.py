"""The general-set limit against the first champion (issue 31): small losses must not add up.

`evaluation.general_max_nll_increase` compares a candidate with the current champion, so steps
that each stay under the margin add up over rounds (measured on real-small: round 2's champion
was 1.061x round 0's general NLL while each step passed a 5% limit).
`evaluation.general_max_nll_increase_from_first` also compares it with the first champion, the
model the flywheel started from (round 1's champion before), whatever came between.

Pure: standard library only, no I/O.
"""

from __future__ import annotations

from flywheel.evaluators.general_check import nll_increase

_AT_LIMIT = 1e-9  # a figure exactly at its limit passes, as evaluators/general_check.py has it


def first_champion_note(
    candidate_nll: float | None, first_nll: float | None, first_version: str
) -> str:
    """The candidate's general NLL against the first champion's, in words."""
    increase = nll_increase(candidate_nll, first_nll)
    first = "-" if first_nll is None else f"{first_nll:#.3g}"
    change = "" if increase is None else f" ({increase:+.1%})"
    return f"vs first champion {first_version} {first}{change}"


def first_champion_refusal(
    candidate_nll: float | None,
    first_nll: float | None,
    max_increase: float | None,
    first_version: str,
) -> str | None:
    """Why the candidate is refused against the first champion, or None: it passes, the limit
    is None, or a figure is missing (never applied to a figure not measured)."""
    increase = nll_increase(candidate_nll, first_nll)
    if max_increase is None or increase is None or increase <= max_increase + _AT_LIMIT:
        return None
    return (
        f"general-set NLL {candidate_nll:#.3g} is {increase:+.1%} against the first champion "
        f"{first_version}'s {first_nll:#.3g} (limit +{max_increase:.1%}, "
        "evaluation.general_max_nll_increase_from_first)"
    )
