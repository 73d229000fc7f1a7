"""Whole rounds on configs/smoke.yaml: under Prefect's test harness, and killed and resumed."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
import yaml

from flywheel.warehouse.contracts import NATURAL_KEYS, contract_violations
from flywheel.warehouse.store import connect
from tests.conftest import REPO_ROOT

ROUND_METRICS_COLUMNS = [
    "round",
    "stage",
    "win rate [95% CI]",
    "W/T/L",
    "accuracy",
    "decision",
    "champion after",
]


@pytest.fixture(scope="session")
def smoke_student(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An untrained tiny student checkpoint (these tests check the round, not learning)."""
    from flywheel.evaluators.skills import render_answer
    from flywheel.llm.checkpoints import save_checkpoint
    from flywheel.sandbox.skills import generate_tasks
    from flywheel.sandbox.tiny_model import build_tiny_llama, build_tokenizer

    tasks = generate_tasks(300, seed=5)
    tokenizer = build_tokenizer(
        [t.prompt for t in tasks] + [render_answer(t.answer, "verbose") for t in tasks]
    )
    model = build_tiny_llama(tokenizer, seed=0, hidden_size=64, n_layers=2, intermediate_size=128)
    return save_checkpoint(model, tokenizer, tmp_path_factory.mktemp("student") / "student")


def write_smoke_config(
    root: Path, student: Path | None = None, endpoints_url: str | None = None
) -> Path:
    """configs/smoke.yaml with every path under `root`; endpoints at `endpoints_url` (a sandbox
    server of its own) if given."""
    data = yaml.safe_load((REPO_ROOT / "configs" / "smoke.yaml").read_text())
    data["warehouse"]["path"] = str(root / "flywheel.duckdb")
    data["warehouse"]["lock_timeout_s"] = 60
    data["student"]["path"] = str(root / "student")
    data["training"]["output_dir"] = str(root / "models")
    if student is not None:
        shutil.copytree(student, root / "student")
    if endpoints_url is not None:
        for endpoint in [*data["references"], data["judge"]]:
            endpoint["base_url"] = endpoints_url
    path = root / "config.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def table_counts(db_path: Path) -> dict[str, int]:
    with connect(db_path) as con:
        return {t: con.execute(f"select count(*) from {t}").fetchone()[0] for t in NATURAL_KEYS}


def decisions(db_path: Path) -> list[tuple]:
    with connect(db_path) as con:
        return con.execute(
            "select round_id, status, promoted, champion_after from rounds order by round_id"
        ).fetchall()


def run_harness_round(root: Path, smoke_student: Path, section: str, settings: dict) -> Path:
    """One smoke round under prefect_test_harness in `root`, the config's `section` updated
    with `settings`; its artifacts recorded in `root/artifacts.json`. Returns `root`."""
    from prefect.testing.utilities import prefect_test_harness

    from flywheel.flows.flywheel_flow import flywheel

    config_path = write_smoke_config(root, smoke_student)
    data = yaml.safe_load(config_path.read_text())
    data[section] |= settings
    config_path.write_text(yaml.safe_dump(data))
    with prefect_test_harness(server_startup_timeout=120):
        flywheel(str(config_path), rounds=1)
        recorded = recorded_run()
    (root / "artifacts.json").write_text(json.dumps(recorded, default=str))
    return root


@pytest.fixture(scope="module")
def harness_round(smoke_student: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One smoke round under prefect_test_harness; returns its root directory."""
    root = tmp_path_factory.mktemp("harness")
    return run_harness_round(root, smoke_student, "warehouse", {"backup_before_round": 1})


def recorded_run() -> dict:
    """What the Prefect API holds after the run: the keyed artifacts' data, each flow run's
    name, tags and state message, and the parent run's log lines."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import (
        ArtifactFilter,
        ArtifactFilterKey,
        LogFilter,
        LogFilterFlowRunId,
    )
    from prefect.logging.handlers import APILogHandler

    APILogHandler().flush()  # the run's last lines are still queued for the API
    keys = ["round-metrics", "round-metrics-detail", "round-trend", "flywheel-night"]
    with get_client(sync_client=True) as client:
        artifacts = client.read_artifacts(
            artifact_filter=ArtifactFilter(key=ArtifactFilterKey(any_=keys))
        )
        runs = client.read_flow_runs()
        parent = [r.id for r in runs if r.name == "flywheel"]
        logs = client.read_logs(log_filter=LogFilter(flow_run_id=LogFilterFlowRunId(any_=parent)))
    return {
        "artifacts": {a.key: a.data for a in artifacts},
        "flow_runs": {r.name: {"tags": r.tags, "message": r.state.message} for r in runs},
        "logs": [log.message for log in logs],
    }


def test_smoke_round_completes_with_every_contract_holding(harness_round: Path) -> None:
    db_path = harness_round / "flywheel.duckdb"
    counts = table_counts(db_path)
    assert counts["battles"] > 0 and counts["evaluations"] + counts["training_runs"] >= 1
    assert decisions(db_path)[0][:2] == (1, "done")
    with connect(db_path) as con:
        games_per_battle = con.execute(
            "select count(*) from judgments where judge = 'judge' group by battle_id"
        ).fetchall()
        assert set(games_per_battle) == {(2,)}, "every battle is judged in both orders"
        assert contract_violations(con) == []
    (backup,) = (harness_round / "backups").glob("flywheel-*-before-round-1")
    assert (backup / "warehouse.duckdb").is_file()  # warehouse.backup_before_round: 1


def test_round_is_a_named_flow_run_with_a_narrow_round_metrics_artifact(
    harness_round: Path,
) -> None:
    recorded = json.loads((harness_round / "artifacts.json").read_text())
    assert "round-1-sft" in recorded["flow_runs"]
    data = recorded["artifacts"]["round-metrics"]
    rows = json.loads(data) if isinstance(data, str) else data
    assert list(rows[0]) == ROUND_METRICS_COLUMNS
    assert rows[0]["round"] == "1" and rows[0]["stage"] == "sft"
    assert rows[0]["decision"] in ("promoted", "kept", "kept (no A/B)")
    detail = recorded["artifacts"]["round-metrics-detail"]
    detail_rows = json.loads(detail) if isinstance(detail, str) else detail
    assert detail_rows[0]["general_nll"] > 0
    assert detail_rows[0]["general_collapse_share"] is not None


def test_the_round_run_carries_its_decision_as_tag_and_state_message(
    harness_round: Path,
) -> None:
    recorded = json.loads((harness_round / "artifacts.json").read_text())
    run = recorded["flow_runs"]["round-1-sft"]
    decision = "promoted" if "promoted" in run["tags"] else "kept"
    assert decision in run["tags"] and "failed" not in run["tags"]
    assert run["message"].startswith(f"round 1 {decision} ")
    if "(eval set: win rate " in run["message"]:  # a stage that trained nothing has no A/B
        assert "W/T/L " in run["message"]


def test_the_parent_run_ends_with_the_nights_line_and_artifact(harness_round: Path) -> None:
    recorded = json.loads((harness_round / "artifacts.json").read_text())
    assert any(m.startswith("the night: round 1 run, ") for m in recorded["logs"])
    night = recorded["artifacts"]["flywheel-night"]
    assert night.startswith("# The night: round 1, ") and "## Needs a look" in night
    assert recorded["flow_runs"]["flywheel"]["message"].startswith("round 1: ")


def start_sandbox_server(config_path: Path) -> tuple[subprocess.Popen, str]:
    port_file = config_path.parent / "port"
    server = subprocess.Popen(
        [sys.executable, "-c", SERVE_SANDBOX, str(config_path), str(port_file)],
        env={**os.environ},
    )
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and server.poll() is None:
        if port_file.exists() and port_file.read_text():
            return server, f"http://127.0.0.1:{port_file.read_text()}/v1"
        time.sleep(0.1)
    server.kill()
    raise RuntimeError(f"the sandbox server did not start (exit status {server.poll()})")


SERVE_SANDBOX = """
import sys, time
from pathlib import Path
from flywheel.config import load_config
from flywheel.sandbox.server import start_sandbox
server = start_sandbox(load_config(sys.argv[1]).sandbox)
Path(sys.argv[2]).write_text(str(server.port))
while True:
    time.sleep(1)
"""


def sandbox_get(url: str, path: str) -> dict:
    with urllib.request.urlopen(url.removesuffix("/v1") + path, timeout=10) as response:
        return json.loads(response.read())


def run_flywheel(config_path: Path, prefect_home: Path) -> subprocess.Popen:
    """`flywheel run --rounds 1` on its own temporary Prefect server (Prefect's start-up
    timeout left to flywheel's default), in a session of its own so that signalling its
    process group spares pytest."""
    env = {**os.environ, "PREFECT_HOME": str(prefect_home)}
    env.pop("PREFECT_API_URL", None)
    env.pop("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", None)
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "flywheel.flows.cli",
            "run",
            "--config",
            str(config_path),
            "--rounds",
            "1",
        ],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )


def test_killed_round_resumes_to_the_same_warehouse_without_repeated_calls(
    smoke_student: Path, tmp_path: Path
) -> None:
    # The uninterrupted run, against its own sandbox server.
    straight_root = tmp_path / "straight"
    straight_root.mkdir()
    server, url = start_sandbox_server(write_smoke_config(straight_root))
    try:
        config = write_smoke_config(straight_root, smoke_student, url)
        assert run_flywheel(config, tmp_path / "prefect-a").wait(timeout=600) == 0
    finally:
        server.kill()

    # The same run killed with SIGKILL while the judge is working, then run again.
    killed_root = tmp_path / "killed"
    killed_root.mkdir()
    server, url = start_sandbox_server(write_smoke_config(killed_root))
    try:
        config = write_smoke_config(killed_root, smoke_student, url)
        run = run_flywheel(config, tmp_path / "prefect-b")
        judge_model = yaml.safe_load(config.read_text())["judge"]["model"]
        while run.poll() is None:
            judged = sandbox_get(url, "/sandbox/stats")["models"][judge_model]["total"]
            if judged >= 20:
                run.send_signal(signal.SIGKILL)
                break
            time.sleep(0.05)
        run.wait(timeout=60)
        assert run.returncode == -signal.SIGKILL, "the run ended before the judge step"
        assert run_flywheel(config, tmp_path / "prefect-b").wait(timeout=600) == 0
        repeated = sandbox_get(url, "/sandbox/requests")["repeated"]
    finally:
        server.kill()

    # sent again: only the judge calls not committed at the kill, at most the concurrency on
    # the wire plus as many answered and waiting in the commit backlog
    concurrency = yaml.safe_load(config.read_text())["judge"]["max_concurrency"]
    assert len(repeated) <= 2 * concurrency
    assert all(r["model"] == judge_model and r["count"] == 2 for r in repeated)
    assert table_counts(killed_root / "flywheel.duckdb") == table_counts(
        straight_root / "flywheel.duckdb"
    )
    assert decisions(killed_root / "flywheel.duckdb") == decisions(
        straight_root / "flywheel.duckdb"
    )
