"""The manual approval gate: a passing candidate waits for a person's answer in the UI."""

from __future__ import annotations

import threading
import time
from pathlib import Path
from types import SimpleNamespace
from uuid import UUID

import pytest
import yaml

from flywheel.evaluators.abtest import Decision
from flywheel.tasks.promote import ask_for_approval
from flywheel.warehouse.store import connect
from tests.conftest import load_config_in
from tests.flows.test_round import write_smoke_config

PAUSE_WAIT_S = 300  # generous: a smoke round on a busy 2-core machine


@pytest.fixture(scope="module")
def harness() -> None:
    from prefect.testing.utilities import prefect_test_harness

    with prefect_test_harness(server_startup_timeout=180):
        yield


@pytest.fixture
def passing_candidate(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every A/B passes (the untrained smoke student cannot win one by itself)."""
    monkeypatch.setattr(
        "flywheel.tasks.evaluate.decide_promotion",
        lambda ab, margin, *unit: Decision(True, "forced pass (test)"),
    )


def manual_config(root: Path, student: Path, timeout_s: int) -> Path:
    path = write_smoke_config(root, student)
    data = yaml.safe_load(path.read_text())
    data["evaluation"].update({"approval": "manual", "approval_timeout_s": timeout_s})
    path.write_text(yaml.safe_dump(data))
    return path


def start_flywheel(config_path: Path) -> tuple[threading.Thread, dict]:
    from flywheel.flows.flywheel_flow import flywheel

    outcome: dict = {}

    def run() -> None:
        try:
            outcome["results"] = flywheel(str(config_path), rounds=1)
        except BaseException as e:  # reported by the test
            outcome["error"] = e

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread, outcome


def paused_flow_run_id(thread: threading.Thread) -> UUID:
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import (
        FlowRunFilter,
        FlowRunFilterState,
        FlowRunFilterStateType,
    )
    from prefect.client.schemas.objects import StateType

    deadline = time.monotonic() + PAUSE_WAIT_S
    with get_client(sync_client=True) as client:
        while time.monotonic() < deadline and thread.is_alive():
            paused = client.read_flow_runs(
                flow_run_filter=FlowRunFilter(
                    state=FlowRunFilterState(type=FlowRunFilterStateType(any_=[StateType.PAUSED]))
                )
            )
            if paused:
                return paused[0].id
            time.sleep(1)
    raise AssertionError("no flow run paused for approval")


def round_decision(root: Path) -> tuple:
    with connect(root / "flywheel.duckdb") as con:
        return con.execute(
            "select r.status, r.promoted, r.champion_after, r.decision_reason, m.status "
            "from rounds r join model_versions m on m.version_id = 'r1-sft' where r.round_id = 1"
        ).fetchone()


def test_manual_approval_pauses_and_a_rejection_keeps_the_champion(
    harness: None, passing_candidate: None, smoke_student: Path, tmp_path: Path
) -> None:
    from prefect.client.orchestration import get_client

    thread, outcome = start_flywheel(manual_config(tmp_path, smoke_student, timeout_s=600))
    flow_run_id = paused_flow_run_id(thread)
    with get_client(sync_client=True) as client:
        result = client.resume_flow_run(
            flow_run_id, run_input={"approve": False, "note": "wait for the next round"}
        )
        assert result.status.value == "ACCEPT", result
    thread.join(timeout=PAUSE_WAIT_S)
    assert not thread.is_alive() and "error" not in outcome, outcome
    status, promoted, champion_after, reason, candidate_status = round_decision(tmp_path)
    assert (status, promoted, champion_after, candidate_status) == ("done", False, "v0", "rejected")
    # the A/B rule, the general set, the objective guard, then the UI's answer
    ab_reason, general, objective, answer = reason.split("; ", 3)
    assert ab_reason == "forced pass (test)" and general.startswith("general set: NLL ")
    assert objective.startswith("objective set (the sandbox's checkers on ")
    assert answer == "rejected in the Prefect UI: wait for the next round; champion kept"


def test_manual_approval_not_answered_in_time_keeps_the_champion_and_says_so(
    harness: None, passing_candidate: None, smoke_student: Path, tmp_path: Path
) -> None:
    thread, outcome = start_flywheel(manual_config(tmp_path, smoke_student, timeout_s=3))
    thread.join(timeout=PAUSE_WAIT_S)
    assert not thread.is_alive() and "error" not in outcome, outcome
    status, promoted, champion_after, reason, _ = round_decision(tmp_path)
    assert (status, promoted, champion_after) == ("done", False, "v0")
    assert "no approval within 3 s (approval timed out); champion kept" in reason


def test_an_approval_promotes_and_its_note_is_part_of_the_reason(tmp_path: Path) -> None:
    config = load_config_in(tmp_path, evaluation={"approval": "manual"})
    seen: dict = {}

    def approve(wait_for_input: type, timeout: int, poll_interval: int) -> object:
        seen.update(timeout=timeout, description=wait_for_input._description)
        return SimpleNamespace(approve=True, note="looks good")

    answer = ask_for_approval(config, "A/B summary", "win rate 0.71", pause=approve)
    assert answer.approved
    assert answer.reason == "win rate 0.71; approved in the Prefect UI: looks good"
    assert seen == {"timeout": 86400, "description": "A/B summary"}
