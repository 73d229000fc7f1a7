"""`flywheel serve` against a real Prefect server (`prefect server start`'s app): a scheduled
run completes a round.

The server and the serve process run in process groups of their own and are stopped at the
end. Waits poll for states with generous deadlines (a busy 2-core machine is slow).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml

from flywheel.flows.nightly import DEPLOYMENT_NAME, nightly_schedule, one_round_at_a_time
from flywheel.warehouse.store import connect
from tests.conftest import REPO_ROOT
from tests.flows.prefect_api import start_prefect_api
from tests.flows.test_round import write_smoke_config

SERVER_HEALTHY_WAIT_S = 180
SCHEDULED_RUN_WAIT_S = 480  # the cron fires within 60 s; a smoke round then takes 15-120 s
SERVE_EXIT_WAIT_S = 60
TIMEZONE = "Europe/Berlin"
EVERY_MINUTE = "* * * * *"


def prefect_env(home: Path, api_url: str | None = None) -> dict[str, str]:
    env = {
        **os.environ,
        "PREFECT_HOME": str(home),
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
        "DO_NOT_TRACK": "1",
        "PYTHONPATH": str(REPO_ROOT),
    }
    env.pop("PREFECT_API_URL", None)
    if api_url:
        env["PREFECT_API_URL"] = api_url
    return env


def stop_group(process: subprocess.Popen, first: signal.Signals = signal.SIGTERM) -> None:
    """Signal the process group, then kill what is left of it."""
    if process.poll() is None:
        try:
            os.killpg(process.pid, first)
            process.wait(timeout=SERVE_EXIT_WAIT_S)
        except (ProcessLookupError, subprocess.TimeoutExpired):
            pass
    try:
        os.killpg(process.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    process.wait(timeout=SERVE_EXIT_WAIT_S)


def healthy(api_url: str) -> bool:
    try:
        with urllib.request.urlopen(f"{api_url}/health", timeout=5) as response:
            return response.read().strip() == b"true"
    except OSError:
        return False


@pytest.fixture(scope="module")
def prefect_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path]]:
    """`prefect server start`'s app on a port bound for it, with its own PREFECT_HOME:
    (api url, home)."""
    home = tmp_path_factory.mktemp("prefect-server") / "home"
    home.mkdir()
    log = (home.parent / "server.log").open("w")
    server, api_url = start_prefect_api(prefect_env(home), log)
    try:
        deadline = time.monotonic() + SERVER_HEALTHY_WAIT_S
        while not healthy(api_url):
            assert server.poll() is None, (home.parent / "server.log").read_text()[-3000:]
            assert time.monotonic() < deadline, "the Prefect server did not become healthy"
            time.sleep(1)
        yield api_url, home
    finally:
        stop_group(server)
        log.close()


@dataclass(frozen=True)
class ServedRun:
    root: Path
    flow_run_id: object
    serve_exit_code: int
    serve_output: str


def reset_sigint() -> None:
    """The serve process gets Ctrl-C as a terminal delivers it, even from a background job."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def held_back_by_the_limit(run: object) -> bool:
    """A run the deployment's limit cancelled because a round was still running (CANCEL_NEW:
    the next minute's run on a busy machine, where a smoke round can outlast the minute)."""
    state = run.state  # type: ignore[attr-defined]
    return state.is_cancelled() and "concurrency limit" in (state.message or "")


def completed_nightly_run(deadline: float, serve: subprocess.Popen, serve_log: Path) -> object:
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import DeploymentFilter, DeploymentFilterName

    with get_client(sync_client=True) as client:
        while time.monotonic() < deadline:
            assert serve.poll() is None, serve_log.read_text()[-3000:]
            runs = client.read_flow_runs(
                deployment_filter=DeploymentFilter(
                    name=DeploymentFilterName(any_=[DEPLOYMENT_NAME])
                )
            )
            failed = [
                r
                for r in runs
                if r.state
                and r.state.is_final()
                and not r.state.is_completed()
                and not held_back_by_the_limit(r)
            ]
            assert not failed, [(r.name, r.state.name, r.state.message) for r in failed]
            if time.monotonic() > deadline - 3:
                print(serve_log.read_text()[-5000:], [(r.name, r.state_name) for r in runs])
            done = [r for r in runs if r.state and r.state.is_completed()]
            if done:
                return done[0].id
            time.sleep(2)
    raise AssertionError("no scheduled run completed in time")


@pytest.fixture(scope="module")
def served_run(
    prefect_server: tuple[str, Path], smoke_student: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ServedRun]:
    """`flywheel serve` with a cron every minute, until one scheduled run completed; then
    Ctrl-C (SIGINT to its process group)."""
    from prefect.settings import PREFECT_API_URL, temporary_settings

    api_url, home = prefect_server
    root = tmp_path_factory.mktemp("served")
    config_path = write_smoke_config(root, smoke_student)
    data = yaml.safe_load(config_path.read_text())
    data["schedule"]["timezone"] = TIMEZONE
    config_path.write_text(yaml.safe_dump(data))
    serve_log = root / "serve.log"
    with serve_log.open("w") as log:  # a file, not a pipe: nobody reads a pipe while it runs
        serve = subprocess.Popen(
            [sys.executable, "-m", "flywheel.flows.cli", "serve", "--config", str(config_path)]
            + ["--cron", EVERY_MINUTE],
            cwd=REPO_ROOT,
            env=prefect_env(home, api_url),
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            preexec_fn=reset_sigint,
        )
    try:
        deadline = time.monotonic() + SCHEDULED_RUN_WAIT_S
        with temporary_settings({PREFECT_API_URL: api_url}):
            flow_run_id = completed_nightly_run(deadline, serve, serve_log)
        os.killpg(serve.pid, signal.SIGINT)
        serve.wait(timeout=SERVE_EXIT_WAIT_S)
        served = ServedRun(root, flow_run_id, serve.returncode, serve_log.read_text())
    finally:
        stop_group(serve)
    with temporary_settings({PREFECT_API_URL: api_url}):  # this process reads the server
        yield served


def test_a_scheduled_run_completes_a_round_in_the_warehouse(served_run: ServedRun) -> None:
    with connect(served_run.root / "flywheel.duckdb") as con:
        statuses = con.execute("select round_id, status from rounds order by round_id").fetchall()
    assert statuses[0] == (1, "done")


def test_the_served_deployment_has_the_timezone_and_runs_one_round_at_a_time(
    served_run: ServedRun,
) -> None:
    from prefect.client.orchestration import get_client

    with get_client(sync_client=True) as client:
        deployment = client.read_deployment_by_name(f"flywheel/{DEPLOYMENT_NAME}")
    [schedule] = deployment.schedules
    assert (schedule.schedule.cron, schedule.schedule.timezone) == (EVERY_MINUTE, TIMEZONE)
    assert deployment.global_concurrency_limit.limit == 1
    assert deployment.concurrency_options.collision_strategy.value == "CANCEL_NEW"


def test_ctrl_c_on_serve_pauses_the_deployment_and_drops_its_scheduled_runs(
    served_run: ServedRun,
) -> None:
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import DeploymentFilter, DeploymentFilterName

    assert "is paused" in served_run.serve_output, served_run.serve_output[-3000:]
    with get_client(sync_client=True) as client:
        deployment = client.read_deployment_by_name(f"flywheel/{DEPLOYMENT_NAME}")
        runs = client.read_flow_runs(
            deployment_filter=DeploymentFilter(name=DeploymentFilterName(any_=[DEPLOYMENT_NAME]))
        )
    assert deployment.paused
    assert not [r for r in runs if r.state and r.state.is_scheduled()]


def test_a_served_rounds_logs_hold_the_mining_counts_and_the_decision(
    served_run: ServedRun,
) -> None:
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import (
        FlowRunFilter,
        FlowRunFilterParentFlowRunId,
        LogFilter,
        LogFilterFlowRunId,
    )

    with get_client(sync_client=True) as client:
        subflows = client.read_flow_runs(
            flow_run_filter=FlowRunFilter(
                parent_flow_run_id=FlowRunFilterParentFlowRunId(any_=[served_run.flow_run_id])
            )
        )
        run_ids = [served_run.flow_run_id, *(r.id for r in subflows)]
        deadline = time.monotonic() + 60  # the API log handler ships lines in batches
        while True:
            logs = client.read_logs(
                log_filter=LogFilter(flow_run_id=LogFilterFlowRunId(any_=run_ids))
            )
            messages = [log.message for log in logs]
            if any("decision:" in m for m in messages) or time.monotonic() > deadline:
                break
            time.sleep(2)
    assert any(m.startswith("round 1 mined: sft ") for m in messages), messages
    assert any(m.startswith("round 1 decision: ") for m in messages), messages
    assert any(m.startswith("round 1 A/B on the eval set: candidate ") for m in messages), messages


def test_the_schedule_and_concurrency_limit_as_built() -> None:
    schedule = nightly_schedule("0 2 * * *", TIMEZONE)
    assert (schedule.cron, schedule.timezone) == ("0 2 * * *", TIMEZONE)
    limit = one_round_at_a_time()
    assert (limit.limit, limit.collision_strategy.value) == (1, "CANCEL_NEW")
