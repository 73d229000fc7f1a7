"""prefect.yaml's `flywheel/nightly-pool` on a real Prefect server, a process work pool and a
worker, with the warehouse on DuckLake (so a second worker could share it): a triggered run
finishes and its round is in the lake."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
import yaml

from flywheel.config import load_config
from flywheel.warehouse.contracts import contract_violations
from flywheel.warehouse.lake import close_lakes
from flywheel.warehouse.store import connect_warehouse
from tests.conftest import REPO_ROOT
from tests.flows.prefect_api import start_prefect_api
from tests.flows.test_round import smoke_student, write_smoke_config  # noqa: F401 - fixture
from tests.warehouse.test_lake import lake_settings

PREFECT = str(Path(sys.executable).parent / "prefect")


def prefect(env: dict[str, str], *args: str, timeout_s: float = 300) -> str:
    done = subprocess.run(
        [PREFECT, *args], env=env, cwd=REPO_ROOT, capture_output=True, text=True, timeout=timeout_s
    )
    assert done.returncode == 0, (
        f"prefect {' '.join(args)}: {done.stdout[-2000:]}{done.stderr[-2000:]}"
    )
    return done.stdout


def wait_healthy(url: str, timeout_s: float = 240) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(f"{url}/health", timeout=5) as reply:
                if reply.status == 200:
                    return
        except OSError:
            pass
        time.sleep(1)
    raise AssertionError(f"the Prefect server at {url} did not become healthy")


def stop(process: subprocess.Popen) -> None:
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=60)


@pytest.mark.slow
def test_a_triggered_work_pool_run_finishes_its_round_on_the_lake(
    smoke_student: Path,  # noqa: F811
    tmp_path: Path,
) -> None:
    root = tmp_path / "run"
    config_path = write_smoke_config(root, smoke_student)
    data = yaml.safe_load(config_path.read_text())
    data["warehouse"] |= lake_settings(root)
    config_path.write_text(yaml.safe_dump(data))
    home = tmp_path / "prefect-home"
    home.mkdir()
    server_env = {
        name: value for name, value in os.environ.items() if name != "PREFECT_API_URL"
    } | {
        "PREFECT_HOME": str(home),
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
        "DO_NOT_TRACK": "1",
    }
    logs = (tmp_path / "server.log").open("w"), (tmp_path / "worker.log").open("w")
    server, api_url = start_prefect_api(server_env, logs[0])
    env = server_env | {"PREFECT_API_URL": api_url}
    worker = None
    try:
        wait_healthy(env["PREFECT_API_URL"])
        prefect(env, "work-pool", "create", "flywheel", "--type", "process")
        prefect(env, "--no-prompt", "deploy", "--all")
        prefect(env, "deployment", "schedule", "clear", "flywheel/nightly-pool", "-y")
        worker = subprocess.Popen(
            [PREFECT, "worker", "start", "--pool", "flywheel"],
            env=env, cwd=REPO_ROOT, stdout=logs[1], stderr=subprocess.STDOUT,
            start_new_session=True,
        )  # fmt: skip
        params = json.dumps({"config_path": str(config_path)})
        out = prefect(
            env,
            "deployment", "run", "flywheel/nightly-pool", "--params", params,
            "--watch", "--watch-timeout", "900",
            timeout_s=960,
        )  # fmt: skip
        assert "Completed" in out, out[-2000:]
    finally:
        for process in (worker, server):
            if process is not None:
                stop(process)
        for log in logs:
            log.close()
    config = load_config(config_path)
    try:
        with connect_warehouse(config.warehouse, read_only=True) as con:
            rounds = con.execute("select round_id, status, error from rounds").fetchall()
            assert rounds == [(1, "done", None)]
            assert contract_violations(con) == []
    finally:
        close_lakes()
