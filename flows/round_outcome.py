"""The round's outcome where the eye lands in the Prefect UI: its flow run tagged `promoted`,
`kept` or `failed`, and its Completed state's message saying what was decided and why."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

from prefect.states import Completed, State

from flywheel.figures import interval, wins_ties_losses
from flywheel.flows.signals import interrupt_signal
from flywheel.logs import step_logger
from flywheel.tasks.evaluate import EvaluationReport
from flywheel.tasks.promote import PromotionDecision

PROMOTED, KEPT, FAILED = "promoted", "kept", "failed"


def tag_this_flow_run(tag: str) -> None:
    """Add `tag` to the running flow run (the UI's runs list shows it); a failure to reach the
    API is only logged: the round's outcome is in the warehouse either way."""
    from prefect.client.orchestration import get_client
    from prefect.runtime import flow_run

    if flow_run.id is None:
        return
    try:
        with get_client(sync_client=True) as client:
            tags = client.read_flow_run(flow_run.id).tags
            client.update_flow_run(flow_run.id, tags=sorted({*tags, tag}))
    except Exception as e:
        step_logger(__name__).warning("the flow run was not tagged %r: %s", tag, e)


def decision_message(
    round_id: int,
    decision: PromotionDecision,
    champion_before: str,
    evaluation: EvaluationReport | None,
) -> str:
    """`round 2 promoted r2-dpo (eval set: win rate 0.634 [0.611, 0.657], W/T/L 71/304/18)`;
    a candidate a guard refused adds each guard's refusal (objective set, general set);
    without an A/B, the decision's reason (the stage skipped or failed). The full reason is in
    the promote step's log line and the round's summary."""
    head = (
        f"round {round_id} {PROMOTED} {decision.champion_after}"
        if decision.promoted
        else f"round {round_id} {KEPT} {champion_before}"
    )
    if evaluation is None:
        return f"{head}: {decision.reason}"
    ab = evaluation.ab
    refused = "" if decision.promoted else "".join(f"; {r}" for r in evaluation.refusals)
    return (
        f"{head} (eval set: win rate {interval(ab.win_rate, ab.ci_low, ab.ci_high)}, "
        f"W/T/L {wins_ties_losses(ab.wins, ab.ties, ab.losses)}){refused}"
    )


def decided(
    result: object,
    decision: PromotionDecision,
    champion_before: str,
    evaluation: EvaluationReport | None,
) -> State:
    """The round's final state: Completed with the decision as its message, the run tagged."""
    tag_this_flow_run(PROMOTED if decision.promoted else KEPT)
    message = decision_message(decision.round_id, decision, champion_before, evaluation)
    return Completed(message=message, data=result)


@contextlib.contextmanager
def tagged_failed_on_error() -> Iterator[None]:
    """A round that raises is tagged `failed` (an interrupted one is left to stop at once)."""
    try:
        yield
    except BaseException as e:
        if interrupt_signal(e) is None:
            tag_this_flow_run(FAILED)
        raise
