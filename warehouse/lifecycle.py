"""The round and model-version lifecycle: which version is champion, a round's status and time,
a training run and its candidate, a promotion. The SQL is in `queries/lifecycle_*.sql`."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from flywheel.warehouse.store import (
    WarehouseSettings,
    connect_warehouse,
    now_utc,
    read_query,
    transaction,
)
from flywheel.warehouse.writes import insert_new

BASE_VERSION_ID = "v0"


@dataclass(frozen=True)
class ModelVersion:
    """A model version the round can load: its id, checkpoint directory and status."""

    version_id: str
    checkpoint_path: str
    status: str


class NoChampionError(RuntimeError):
    """The warehouse has no champion model yet."""


def current_champion(warehouse: WarehouseSettings) -> ModelVersion:
    """The newest version with status champion."""
    with connect_warehouse(warehouse) as con:
        row = con.execute(read_query("lifecycle_champion")).fetchone()
    if row is None:
        raise NoChampionError(
            "the warehouse has no champion model yet. Fix: run `flywheel run` (it registers "
            "student.path as the round-0 champion) or `flywheel init` on the sandbox."
        )
    return ModelVersion(*row)


def register_base_model(warehouse: WarehouseSettings, checkpoint_path: str) -> ModelVersion:
    """Record the round-0 student as the first champion (once; later calls change nothing)."""
    base = {
        "version_id": BASE_VERSION_ID,
        "stage": "base",
        "round_id": 0,
        "checkpoint_path": checkpoint_path,
        "status": "champion",
    }
    with connect_warehouse(warehouse) as con:
        if not con.execute(read_query("lifecycle_champion_count")).fetchone()[0]:
            insert_new(con, "model_versions", [base], ["version_id"])
    return current_champion(warehouse)


def record_promotion(
    warehouse: WarehouseSettings,
    round_id: int,
    *,
    champion: str,
    candidate: str | None,
    promoted: bool,
    reason: str,
) -> None:
    """The candidate becomes champion (the old one retired) or rejected; the round keeps why."""
    champion_after = candidate if promoted and candidate else champion
    with connect_warehouse(warehouse) as con, transaction(con):
        if candidate is not None:
            status = "champion" if promoted else "rejected"
            con.execute(read_query("lifecycle_promotion_candidate"), [status, candidate])
        if promoted:
            con.execute(read_query("lifecycle_promotion_retire"), [champion])
        con.execute(
            read_query("lifecycle_promotion_round"), [promoted, champion_after, reason, round_id]
        )


def record_round_start(warehouse: WarehouseSettings, row: dict[str, Any]) -> None:
    """Insert the round's row once; a resumed round is marked running again."""
    with connect_warehouse(warehouse) as con:
        insert_new(con, "rounds", [row], ["round_id"])
        con.execute(read_query("lifecycle_round_running"), [row["round_id"]])


def recorded_champion(warehouse: WarehouseSettings, round_id: int) -> ModelVersion:
    """The champion the round battled with, as recorded when it first started."""
    with connect_warehouse(warehouse) as con:
        row = con.execute(read_query("lifecycle_round_champion"), [round_id]).fetchone()
    return ModelVersion(*row)


def add_round_time(warehouse: WarehouseSettings, round_id: int, attempt_wall_s: float) -> float:
    """Add this attempt's time to any earlier attempt's; return the round's total."""
    with connect_warehouse(warehouse) as con, transaction(con):
        con.execute(read_query("lifecycle_round_add_time"), [attempt_wall_s, round_id])
        return con.execute(read_query("lifecycle_round_wall"), [round_id]).fetchone()[0]


def mark_round_done(warehouse: WarehouseSettings, round_id: int) -> None:
    """The last act of a round, after its report is published: a rerun skips it from now on."""
    with connect_warehouse(warehouse) as con:
        con.execute(read_query("lifecycle_round_done"), [now_utc(), round_id])


def mark_round_unfinished(
    warehouse: WarehouseSettings, round_id: int, *, status: str, cause: str, attempt_wall_s: float
) -> None:
    """`failed` (with the error) or `interrupted` (with the signal): a rerun resumes it."""
    with connect_warehouse(warehouse) as con:
        params = [status, cause[:2000], attempt_wall_s, round_id]
        con.execute(read_query("lifecycle_round_unfinished"), params)


def round_statuses(warehouse: WarehouseSettings) -> list[tuple[int, str]]:
    """(round id, status) of every recorded round, in order."""
    with connect_warehouse(warehouse) as con:
        return con.execute(read_query("lifecycle_round_statuses")).fetchall()


def round_stage(warehouse: WarehouseSettings, round_id: int) -> str:
    """The stage a recorded round trains."""
    with connect_warehouse(warehouse) as con:
        return con.execute(read_query("lifecycle_round_stage"), [round_id]).fetchone()[0]


def recorded_training(warehouse: WarehouseSettings, round_id: int) -> tuple[Any, ...] | None:
    """(status, candidate, checkpoint, reason, n_examples) of the round's finished stage."""
    with connect_warehouse(warehouse) as con:
        return con.execute(read_query("lifecycle_training_recorded"), [round_id]).fetchone()


def record_training(
    warehouse: WarehouseSettings, run: dict[str, Any], *, candidate: dict[str, Any] | None
) -> None:
    """A training run and, when it trained one, its candidate version, in one transaction."""
    with connect_warehouse(warehouse) as con, transaction(con):
        insert_new(con, "training_runs", [run], ["run_id"])
        if candidate is not None:
            insert_new(con, "model_versions", [candidate], ["version_id"])


def rejected_checkpoints(warehouse: WarehouseSettings) -> list[tuple[str, str, str, int]]:
    """(version id, checkpoint path, stage, round) of rejected candidates still on disk, newest
    first."""
    with connect_warehouse(warehouse) as con:
        return con.execute(read_query("retention_rejected")).fetchall()


def mark_checkpoint_deleted(warehouse: WarehouseSettings, version_id: str) -> None:
    """The rejected version's checkpoint is gone from disk; its row (history) stays."""
    with connect_warehouse(warehouse) as con:
        con.execute(read_query("retention_mark_deleted"), [now_utc(), version_id])
