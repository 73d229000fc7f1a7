"""Step 7 of the round: the champion moves only on a passing A/B; the decision is stored.

Also the small model registry the round needs: which version is champion, and registering
the round-0 student.
"""

from __future__ import annotations

from dataclasses import dataclass

from flywheel.config import Config
from tasks.endpoints import step_logger
from warehouse.store import connect_warehouse, insert_new, transaction

BASE_VERSION_ID = "v0"


@dataclass(frozen=True)
class ModelVersion:
    version_id: str
    checkpoint_path: str
    status: str


@dataclass(frozen=True)
class PromotionDecision:
    round_id: int
    promoted: bool
    champion_after: str
    reason: str


def register_base_model(config: Config, checkpoint_path: str) -> ModelVersion:
    """Record the round-0 student as the first champion (once; later calls change nothing)."""
    with connect_warehouse(config.warehouse) as con:
        has_champion = con.execute(
            "select count(*) from model_versions where status = 'champion'"
        ).fetchone()[0]
        if not has_champion:
            insert_new(
                con,
                "model_versions",
                [
                    {
                        "version_id": BASE_VERSION_ID,
                        "stage": "base",
                        "round_id": 0,
                        "checkpoint_path": checkpoint_path,
                        "status": "champion",
                    }
                ],
                ["version_id"],
            )
    return current_champion(config)


def current_champion(config: Config) -> ModelVersion:
    with connect_warehouse(config.warehouse) as con:
        row = con.execute(
            "select version_id, checkpoint_path, status from model_versions "
            "where status = 'champion' order by created_at desc limit 1"
        ).fetchone()
    if row is None:
        raise RuntimeError(
            "the warehouse has no champion model yet. Fix: run `flywheel run` (it registers "
            "student.path as the round-0 champion) or `flywheel init` on the sandbox."
        )
    return ModelVersion(*row)


def decide_round(
    config: Config,
    round_id: int,
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
    with connect_warehouse(config.warehouse) as con:
        with transaction(con):
            if candidate is not None:
                con.execute(
                    "update model_versions set status = ? where version_id = ? and status = 'candidate'",
                    ["champion" if promoted else "rejected", candidate],
                )
            if promoted:
                con.execute(
                    "update model_versions set status = 'retired' where version_id = ? and status = 'champion'",
                    [champion],
                )
            con.execute(
                "update rounds set promoted = ?, champion_after = ?, decision_reason = ? where round_id = ?",
                [promoted, champion_after, reason, round_id],
            )
    step_logger(__name__).info(
        "round %d decision: %s (%s)",
        round_id,
        "promoted " + champion_after if promoted else "kept " + champion,
        reason,
    )
    return PromotionDecision(round_id, promoted, champion_after, reason)
