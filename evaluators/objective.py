"""The objective guard (issue 32): a candidate must not lose objective ground.

A candidate trained on users' feedback can learn to please instead of to be right (a reward
from thumbs made a model sycophantic while offline evals and A/B tests missed it). So the gate
also compares candidate and champion on an objective set, where a reply is right or wrong
whoever judges it: the sandbox's checkers on the held-out prompts, or a user's own checkable
eval set (pool/objective_set.py). The rule (`objective_verdict`):

- the candidate is refused when its accuracy is more than `max_drop` below the champion's
  (point estimates over the same items; 0.05: five points; a drop exactly at the limit passes);
- with `max_drop` None the figures are reported only, never decisive;
- with no objective set the guard says it cannot apply (when a limit is set), never passes
  silently.

Accuracies carry seeded percentile-bootstrap intervals over items (`score_objective`).

Pure: numpy and the standard library, no I/O.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Literal

import numpy as np

from flywheel.evaluators.abtest import Decision
from flywheel.evaluators.final_answer import extract_final_answer, strip_wrapping

_AT_LIMIT = 1e-9  # a drop exactly at its limit passes (0.35 - 0.30 is 0.04999999999999999)
_NUMBER_RE = re.compile(r"^[-+]?(?:\d{1,3}(?:,\d{3})+|\d+)(?:\.\d+)?$|^[-+]?\.\d+$")
_SPACES_RE = re.compile(r"\s+")

ObjectiveOutcome = Literal["passed", "refused", "reported", "cannot_apply", "off"]


def _number(text: str) -> Decimal | None:
    text = text.strip()
    if not _NUMBER_RE.match(text):
        return None
    try:
        return Decimal(text.replace(",", ""))
    except InvalidOperation:
        return None


def answers_equal(expected: str, given: str) -> bool:
    """Whether a committed answer equals the expected one: as numbers when both are numbers
    (`7` = `7.0` = `+7`, `1,200` = `1200`), else as text without wrappers, case or runs of
    spaces (`**Paris**` = `paris`)."""
    expected_text, given_text = strip_wrapping(expected), strip_wrapping(given)
    expected_number, given_number = _number(expected_text), _number(given_text)
    if expected_number is not None and given_number is not None:
        return expected_number == given_number
    return (
        _SPACES_RE.sub(" ", expected_text).casefold() == _SPACES_RE.sub(" ", given_text).casefold()
    )


def reply_is_right(expected: str, reply: str) -> bool:
    """Whether `reply` commits to the expected answer (evaluators/final_answer.py reads what it
    commits to); a reply that commits to nothing is wrong."""
    given = extract_final_answer(reply)
    return given is not None and answers_equal(expected, given)


@dataclass(frozen=True)
class ObjectiveScore:
    """One model's accuracy on the objective set's checked items, with its interval."""

    n_items: int
    n_correct: int
    accuracy: float
    ci_low: float
    ci_high: float


def score_objective(
    correct: Sequence[bool], n_samples: int = 1000, seed: int = 0, ci: float = 0.95
) -> ObjectiveScore | None:
    """Accuracy over the items (`correct`: one verdict per item) with a seeded percentile
    bootstrap interval over items (`n_samples` resamples, central coverage `ci`); None when
    there is no item."""
    n_items = len(correct)
    if n_items == 0:
        return None
    if n_samples < 1 or not 0.0 < ci < 1.0:
        raise ValueError(f"need n_samples >= 1 and 0 < ci < 1; got {n_samples}, {ci}")
    n_correct = int(sum(bool(c) for c in correct))
    accuracy = n_correct / n_items
    draws = np.random.default_rng(seed).binomial(n_items, accuracy, size=n_samples) / n_items
    tail = (1.0 - ci) / 2.0
    low, high = np.quantile(draws, [tail, 1.0 - tail])
    return ObjectiveScore(n_items, n_correct, accuracy, float(low), float(high))


@dataclass(frozen=True)
class ObjectiveComparison:
    """Candidate and champion on the same objective items; `source` says which set, in words."""

    source: str
    candidate: ObjectiveScore
    champion: ObjectiveScore
    set_sha256: str | None = None  # a user's file: its bytes' sha256; the sandbox: None

    @property
    def change(self) -> float:
        """The candidate's accuracy minus the champion's (negative: it lost ground)."""
        return self.candidate.accuracy - self.champion.accuracy


@dataclass(frozen=True)
class ObjectiveVerdict:
    """What the guard decided (`outcome`) and its words for the decision's reason (None: it
    has nothing to say, the guard being off and nothing measured)."""

    outcome: ObjectiveOutcome
    note: str | None
    refusal: str | None = None  # outcome refused: why, in one clause (also ends `note`)


def _figure(score: ObjectiveScore) -> str:
    return f"{score.accuracy:.3f} [{score.ci_low:.3f}, {score.ci_high:.3f}]"


def comparison_note(comparison: ObjectiveComparison) -> str:
    """The objective figures in words: source, both accuracies with intervals, the change."""
    return (
        f"objective set ({comparison.source}): accuracy {_figure(comparison.candidate)} vs "
        f"champion {_figure(comparison.champion)} ({comparison.change:+.3f})"
    )


def objective_verdict(
    comparison: ObjectiveComparison | None, max_drop: float | None, why_missing: str = ""
) -> ObjectiveVerdict:
    """The guard's outcome (see the module doc); `why_missing` says why there is no
    comparison, for the cannot-apply note."""
    if comparison is None:
        if max_drop is None:
            return ObjectiveVerdict("off", None)
        why = f": {why_missing}" if why_missing else ""
        return ObjectiveVerdict(
            "cannot_apply",
            f"objective guard cannot apply{why} (evaluation.objective_max_drop "
            f"{max_drop:.3f} not checked)",
        )
    note = comparison_note(comparison)
    if max_drop is None:
        return ObjectiveVerdict("reported", f"{note}, reported only")
    drop = -comparison.change
    if drop > max_drop + _AT_LIMIT:
        refusal = (
            f"refused on the objective set: accuracy {drop:.3f} below the champion's "
            f"(limit {max_drop:.3f}, evaluation.objective_max_drop)"
        )
        return ObjectiveVerdict("refused", f"{note}; {refusal}", refusal)
    return ObjectiveVerdict("passed", f"{note}, within the limit of -{max_drop:.3f}")


def guarded_decision(decision: Decision, verdict: ObjectiveVerdict) -> Decision:
    """`decision` with the guard's note in its reason; refused when the guard refused."""
    if verdict.note is None:
        return decision
    reason = f"{decision.reason}; {verdict.note}"
    return Decision(promote=decision.promote and verdict.outcome != "refused", reason=reason)
