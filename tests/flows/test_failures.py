"""A failure never looks like success, and a rerun repairs what it left: a failed training
stage, a crash while the report is published, a killed publish's staging copies, calls that
failed for good, a second run on the same warehouse, and runs a SIGKILL left "Running"."""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import pytest
import yaml

from flywheel.config import load_config
from flywheel.flows.run_command import run_flywheel_cli
from flywheel.warehouse.store import connect
from tests.flows.test_round import write_smoke_config


@pytest.fixture(scope="module")
def prefect_api() -> None:
    from prefect.testing.utilities import prefect_test_harness

    with prefect_test_harness(server_startup_timeout=300):
        yield


def run_cli(config_path: Path, retry_failed: bool = False) -> int:
    return run_flywheel_cli(load_config(config_path), str(config_path), 1, retry_failed)


def round_row(config_path: Path) -> dict:
    with connect(load_config(config_path).warehouse.path) as con:
        frame = con.execute("select * from v_round_summary where round_id = 1").df()
    return frame.iloc[0].to_dict()


def flow_run_states(name: str) -> list[str]:
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterName

    with get_client(sync_client=True) as client:
        runs = client.read_flow_runs(
            flow_run_filter=FlowRunFilter(name=FlowRunFilterName(any_=[name]))
        )
    return [run.state.type.value for run in runs]


def summaries_since(started: datetime, round_id: int) -> list[str]:
    """The `round-<n>-summary` markdown versions published since `started`, oldest first."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterKey

    with get_client(sync_client=True) as client:
        artifacts = client.read_artifacts(
            artifact_filter=ArtifactFilter(
                key=ArtifactFilterKey(any_=[f"round-{round_id}-summary"])
            )
        )
    return [a.data for a in sorted(artifacts, key=lambda a: a.created) if a.created > started]


def error_logs_since(started: datetime) -> list[str]:
    """The messages of ERROR records the Prefect API received since `started` (the UI's logs)."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import LogFilter, LogFilterLevel, LogFilterTimestamp

    with get_client(sync_client=True) as client:
        logs = client.read_logs(
            log_filter=LogFilter(
                level=LogFilterLevel(ge_=40), timestamp=LogFilterTimestamp(after_=started)
            )
        )
    return [log.message for log in logs]


# `flywheel run --rounds 1` whose sft stage fails as a full disk would make it fail
FULL_DISK_RUN = """
import sys
import flywheel.tasks.train
def full_disk(*_args, **_kwargs):
    raise OSError(28, "No space left on device")
flywheel.tasks.train._train = full_disk
from flywheel.flows.cli import main
sys.exit(main(["run", "--config", sys.argv[1], "--rounds", "1"]))
"""


@pytest.fixture
def smoke(tmp_path: Path, smoke_student: Path, prefect_api: None) -> Path:
    return write_smoke_config(tmp_path, smoke_student)


def test_a_failed_training_stage_fails_the_run_and_a_rerun_trains_it(
    smoke: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    import flywheel.tasks.train

    def full_disk(*_args: object, **_kwargs: object) -> None:
        raise OSError(28, "No space left on device")

    started = datetime.now(UTC)
    monkeypatch.setattr(flywheel.tasks.train, "_train", full_disk)
    assert run_cli(smoke) == 1
    terminal = capsys.readouterr()
    assert "the sft stage failed: OSError: [Errno 28] No space left on device" in terminal.err
    assert " failed " in terminal.out.splitlines()[2]  # the round table: its decision cell
    row = round_row(smoke)
    assert row["status"] == "failed" and "No space left on device" in row["error"]
    assert "FAILED" in flow_run_states("round-1-sft")
    (summary,) = summaries_since(started, 1)
    assert "**Round failed:**" in summary and "No space left on device" in summary

    staging = Path(load_config(smoke).training.output_dir) / ".r1-sft.tmp-0badc0de"
    staging.mkdir(parents=True)
    (staging / "model.safetensors").write_bytes(b"half a checkpoint")
    scratch = staging.parent / ".scratch" / "flywheel-sft-killed"
    scratch.mkdir(parents=True)
    monkeypatch.undo()
    assert run_cli(smoke) == 0
    assert round_row(smoke)["status"] == "done"
    assert not staging.exists(), "a killed publish's staging copy was left behind"
    assert not scratch.exists(), "a killed stage's TRL scratch directory was left behind"
    with connect(load_config(smoke).warehouse.path) as con:
        statuses = con.execute("select status from training_runs order by status").fetchall()
    assert statuses == [("done",), ("failed",)]


def test_a_failed_stage_prints_its_cause_once_on_one_line_and_the_ui_keeps_the_traceback(
    smoke: Path, tmp_path: Path
) -> None:
    from prefect.settings import PREFECT_API_URL

    env = {**os.environ, "PREFECT_HOME": str(tmp_path / "prefect-home")}
    env["PREFECT_API_URL"] = PREFECT_API_URL.value()  # this module's server: no start-up wait
    env.pop("PREFECT_LOGGING_SETTINGS_PATH", None)
    started = datetime.now(UTC)
    run = subprocess.run(
        [sys.executable, "-c", FULL_DISK_RUN, str(smoke)], env=env, capture_output=True, text=True
    )
    assert run.returncode == 1, run.stderr[-3000:]
    assert "Traceback" not in run.stderr, run.stderr[-3000:]
    cause = "OSError: [Errno 28] No space left on device"
    prefect_lines = [line for line in run.stderr.splitlines() if "| ERROR" in line]
    assert len(prefect_lines) == 1 and cause in prefect_lines[0], run.stderr[-3000:]
    assert (
        f"flywheel: the run failed: StageFailedError: round 1: the sft stage failed: {cause}"
        in (run.stderr)
    )
    row = round_row(smoke)
    assert row["status"] == "failed" and "No space left on device" in row["error"]
    ui_errors = error_logs_since(started)
    assert sum("Traceback" in message for message in ui_errors) >= 3, ui_errors


def test_a_crash_while_publishing_the_report_leaves_the_round_to_finish_on_rerun(
    smoke: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import flywheel.flows.round

    def crash(*_args: object) -> None:
        raise ConnectionError("the Prefect API went away")

    started = datetime.now(UTC)
    monkeypatch.setattr(flywheel.flows.round, "publish_round_report", crash)
    assert run_cli(smoke) == 1
    assert round_row(smoke)["status"] == "failed"
    monkeypatch.undo()
    assert run_cli(smoke) == 0
    assert round_row(smoke)["status"] == "done"
    failure_summary, summary = summaries_since(started, 1)
    assert "**Round failed:** ConnectionError: the Prefect API went away" in failure_summary
    assert "**Decision:**" in summary


def test_retry_failed_answers_and_judges_a_finished_rounds_failed_calls_and_mines_them(
    smoke: Path,
) -> None:
    from flywheel.flows.retry import rounds_with_failed_calls

    faulty = yaml.safe_load(smoke.read_text())
    faulty["references"][0]["max_retries"] = 0
    faulty["judge"]["max_retries"] = 0
    faulty["sandbox"]["models"]["sandbox-strong"]["rate_500"] = 0.3
    faulty["sandbox"]["models"]["sandbox-judge"]["rate_500"] = 0.1
    smoke.write_text(yaml.safe_dump(faulty))
    assert run_cli(smoke) == 0
    failed = rounds_with_failed_calls(load_config(smoke))
    assert failed[1].n_unanswered > 0 and failed[1].n_error_battles > 0
    n_battles, n_sft = round_row(smoke)["n_battles"], round_row(smoke)["n_sft"]

    healthy = yaml.safe_load(smoke.read_text())
    healthy["sandbox"]["models"]["sandbox-strong"]["rate_500"] = 0.0
    healthy["sandbox"]["models"]["sandbox-judge"]["rate_500"] = 0.0
    smoke.write_text(yaml.safe_dump(healthy))
    assert run_cli(smoke) == 0, "nothing to retry without --retry-failed"
    assert rounds_with_failed_calls(load_config(smoke)) == failed
    assert run_cli(smoke, retry_failed=True) == 0
    assert rounds_with_failed_calls(load_config(smoke)) == {}
    assert round_row(smoke)["n_battles"] > n_battles
    assert round_row(smoke)["n_sft"] >= n_sft


def test_a_second_run_on_the_same_warehouse_is_refused_naming_the_first(
    smoke: Path, capsys: pytest.CaptureFixture
) -> None:
    import os

    from flywheel.flows.run_lock import hold_run_lock

    with hold_run_lock(load_config(smoke).warehouse):
        assert run_cli(smoke) == 1
    message = capsys.readouterr().err
    assert "another flywheel run is working on" in message and f"PID {os.getpid()}" in message
    with connect(load_config(smoke).warehouse.path) as con:
        assert con.execute("select count(*) from rounds").fetchone()[0] == 0


def test_runs_a_kill_left_running_are_marked_crashed_by_the_next_run(smoke: Path) -> None:
    from prefect import flow
    from prefect.client.orchestration import get_client
    from prefect.states import Running

    @flow(name="flywheel")
    def killed_flywheel(config_path: str) -> None: ...

    with get_client(sync_client=True) as client:
        killed = client.create_flow_run(
            killed_flywheel, parameters={"config_path": str(smoke)}, state=Running()
        )
        other = client.create_flow_run(
            killed_flywheel, parameters={"config_path": "/elsewhere.yaml"}, state=Running()
        )
    assert run_cli(smoke) == 0
    with get_client(sync_client=True) as client:
        assert client.read_flow_run(killed.id).state.type.value == "CRASHED"
        assert client.read_flow_run(other.id).state.type.value == "RUNNING"
