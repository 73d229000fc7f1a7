"""Flow and task runs left "Running" in Prefect by a killed run are marked Crashed.

A SIGKILL (or a power cut) gives Prefect no chance to record the end of a run, so the UI would
show it running for good. The next run on the same warehouse, holding its run lock, knows
that no other run is working there and closes those runs with a message that says so.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from flywheel.config import Config, ConfigError, WarehouseConfig, load_config
from flywheel.logs import step_logger

FLOW_NAMES = ("flywheel", "arena-round")
STALE_MESSAGE = "the process running it was killed; the warehouse's next run resumed its round"


def _warehouse_of(parameters: dict[str, Any]) -> Path | None:
    """The warehouse a flywheel or arena-round run worked on, from its parameters."""
    config = parameters.get("config")
    if isinstance(config, dict):
        try:
            file = WarehouseConfig.model_validate(config.get("warehouse", {})).local_file
        except ValueError:
            return None
        return file.resolve() if file else None
    config_path = parameters.get("config_path")
    if not config_path:
        return None
    try:
        file = load_config(config_path).warehouse.local_file
    except ConfigError:
        return None
    return file.resolve() if file else None


def mark_stale_runs_crashed(config: Config) -> int:
    """Mark this warehouse's Running/Pending flow runs other than the current one (and their
    Running task runs) Crashed; return how many flow runs were marked."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import (
        FlowFilter,
        FlowFilterName,
        FlowRunFilter,
        FlowRunFilterId,
        FlowRunFilterState,
        FlowRunFilterStateType,
        TaskRunFilter,
        TaskRunFilterState,
        TaskRunFilterStateType,
    )
    from prefect.client.schemas.objects import StateType
    from prefect.runtime import flow_run
    from prefect.states import Crashed

    ours = config.warehouse.local_file
    if ours is None:
        return 0
    ours = ours.resolve()
    unfinished = [StateType.RUNNING, StateType.PENDING]
    with get_client(sync_client=True) as client:
        runs = client.read_flow_runs(
            flow_filter=FlowFilter(name=FlowFilterName(any_=list(FLOW_NAMES))),
            flow_run_filter=FlowRunFilter(
                state=FlowRunFilterState(type=FlowRunFilterStateType(any_=unfinished))
            ),
        )
        stale = [
            run
            for run in runs
            if str(run.id) != flow_run.id and _warehouse_of(run.parameters) == ours
        ]
        if not stale:
            return 0
        tasks = client.read_task_runs(
            flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[run.id for run in stale])),
            task_run_filter=TaskRunFilter(
                state=TaskRunFilterState(type=TaskRunFilterStateType(any_=unfinished))
            ),
        )
        for task_run in tasks:
            client.set_task_run_state(task_run.id, Crashed(message=STALE_MESSAGE), force=True)
        for run in stale:
            client.set_flow_run_state(run.id, Crashed(message=STALE_MESSAGE), force=True)
    step_logger(__name__).warning(
        "marked %d flow runs of a killed run Crashed: %s",
        len(stale),
        ", ".join(run.name for run in stale),
    )
    return len(stale)
