"""Step 7 of the round: the champion moves only on a passing A/B; the decision is stored.

With `evaluation.approval: manual` a passing candidate waits for a person: the run pauses
with a form in the Prefect UI (approve, note) that shows the A/B result; approving promotes,
rejecting or not answering within `evaluation.approval_timeout_s` keeps the champion.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from prefect.exceptions import FlowPauseTimeout
from prefect.input import RunInput

from flywheel.config import Config
from flywheel.logs import step_logger
from flywheel.warehouse.lifecycle import record_promotion

if TYPE_CHECKING:
    from flywheel.tasks.evaluate import EvaluationReport

APPROVAL_POLL_S = 5  # how often a paused run asks the server whether it was resumed


@dataclass(frozen=True)
class PromotionDecision:
    round_id: int
    promoted: bool
    champion_after: str
    reason: str


def decide_round(
    config: Config,
    round_id: int,
    *,
    champion: str,
    candidate: str | None,
    promote: bool,
    reason: str,
) -> PromotionDecision:
    """Move the champion to the candidate when `promote`, else keep it; store why.

    A skipped or failed stage has no candidate and always keeps the champion. Running it
    again for a decided round changes nothing.
    """
    promoted = bool(promote and candidate)
    champion_after = candidate if promoted and candidate else champion
    record_promotion(
        config.warehouse,
        round_id,
        champion=champion,
        candidate=candidate,
        promoted=promoted,
        reason=reason,
    )
    outcome = f"promoted {champion_after}" if promoted else f"kept {champion}"
    step_logger(__name__).info("round %d decision: %s (%s)", round_id, outcome, reason)
    return PromotionDecision(round_id, promoted, champion_after, reason)


class PromotionApproval(RunInput):
    """The form a person fills in the Prefect UI to resume a paused round."""

    approve: bool = False
    note: str = ""


@dataclass(frozen=True)
class ApprovalAnswer:
    approved: bool
    reason: str  # the A/B reason and what the person (or the timeout) decided


def approval_summary(
    round_id: int, candidate: str, champion: str, evaluation: EvaluationReport
) -> str:
    """Markdown shown above the approval form: the A/B result and what each answer does."""
    ab = evaluation.ab

    def share(value: float | None) -> str:
        return "-" if value is None else f"{value:.1%}"

    return "\n".join(
        [
            f"## Round {round_id}: promote {candidate} over {champion}?",
            "",
            f"Held-out A/B over {ab.n} prompts ({ab.n_excluded} excluded): win rate "
            f"**{ab.win_rate:.3f}** [{ab.ci_low:.3f}, {ab.ci_high:.3f}], length-controlled "
            f"{ab.lc_win_rate:.3f}; wins/ties/losses {ab.wins}/{ab.ties}/{ab.losses}; mean "
            f"answer length: candidate {ab.mean_len_candidate:.0f}, champion "
            f"{ab.mean_len_champion:.0f} chars.",
            f"Checker accuracy: candidate {share(evaluation.sandbox_accuracy_candidate)}, "
            f"champion {share(evaluation.sandbox_accuracy_champion)}.",
            f"Objective guard: {objective_words(evaluation)}.",
            f"Rule: {evaluation.decision.reason}.",
            "",
            f"Tick **approve** to promote {candidate}; leave it unticked to keep {champion}. "
            "The note is stored with the decision.",
        ]
    )


def objective_words(evaluation: EvaluationReport) -> str:
    """The objective guard's outcome and figures for the approval form."""
    verdict = evaluation.objective_verdict
    if verdict is None or verdict.note is None:
        return "off (evaluation.objective_max_drop is null and no objective set was measured)"
    if verdict.outcome == "cannot_apply":
        return verdict.note.removeprefix("objective guard ")
    return f"{verdict.outcome}: {verdict.note}"


def ask_for_approval(
    config: Config,
    summary: str,
    ab_reason: str,
    pause: Callable[..., Any] | None = None,
) -> ApprovalAnswer:
    """Pause the flow run until a person answers the form, or the timeout passes.

    `pause` is Prefect's `pause_flow_run` (a test passes a fake). On timeout the run is set
    back to Running so the round can finish, and the champion is kept.
    """
    from prefect.flow_runs import pause_flow_run

    timeout_s = config.evaluation.approval_timeout_s
    form = PromotionApproval.with_initial_data(description=summary, approve=False, note="")
    try:
        answer = (pause or pause_flow_run)(
            wait_for_input=form, timeout=timeout_s, poll_interval=min(APPROVAL_POLL_S, timeout_s)
        )
    except FlowPauseTimeout:
        resume_after_timeout()
        return ApprovalAnswer(
            False,
            f"{ab_reason}; no approval within {timeout_s} s (approval timed out); champion kept",
        )
    note = f": {answer.note}" if answer.note else ""
    if answer.approve:
        return ApprovalAnswer(True, f"{ab_reason}; approved in the Prefect UI{note}")
    return ApprovalAnswer(False, f"{ab_reason}; rejected in the Prefect UI{note}; champion kept")


def resume_after_timeout() -> None:
    """A timed-out pause leaves the run Paused (then Failed) on the server: set it Running."""
    from prefect.client.orchestration import get_client
    from prefect.context import FlowRunContext
    from prefect.states import Running

    context = FlowRunContext.get()
    if context is None or context.flow_run is None:
        return
    with get_client(sync_client=True) as client:
        client.set_flow_run_state(
            context.flow_run.id, Running(message="approval timed out; champion kept"), force=True
        )
