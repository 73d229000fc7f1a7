"""Step 7 of the round: the champion moves only on a passing A/B; the decision is stored."""

from __future__ import annotations

from dataclasses import dataclass

from flywheel.config import Config
from flywheel.logs import step_logger
from flywheel.warehouse.lifecycle import record_promotion


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
    step_logger(__name__).info("round %d: %s (%s)", round_id, outcome, reason)
    return PromotionDecision(round_id, promoted, champion_after, reason)
