"""`flywheel logs add`: exit 0 with what was read; a second add says nothing was new; a bad
path or a log with user ids and no salt exits 2 naming the fix."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from flywheel.flows.cli import main
from tests.flows.test_cli import write_config

RECORD = {
    "request": {"messages": [{"role": "user", "content": "What is 2 + 3?"}]},
    "response": {"id": "r1", "choices": [{"message": {"role": "assistant", "content": "5"}}]},
    "metadata": {"user_id": "alice", "feedback": {"thumb": "down"}},
}


def test_logs_add_reads_a_file_once(
    tmp_path: Path, capsys: pytest.CaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FLYWHEEL_USER_SALT", "cli-salt")
    config = str(write_config(tmp_path))
    log = tmp_path / "app.jsonl"
    log.write_text(json.dumps(RECORD) + "\n{broken\n")
    assert main(["logs", "add", "--config", config, str(log), "--source", "app"]) == 0
    out = capsys.readouterr().out
    assert "logs ('app'): 1 files (0 with nothing new), 2 records read; 1 conversations" in out
    assert f"{log} line 2: bad JSON" in out
    assert main(["logs", "add", "--config", config, str(log)]) == 0
    assert "1 files (1 with nothing new), 0 records read" in capsys.readouterr().out


def test_logs_add_of_a_missing_file_exits_2(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    config = str(write_config(tmp_path))
    assert main(["logs", "add", "--config", config, str(tmp_path / "nope.jsonl")]) == 2
    assert "does not exist. Fix: check the path." in capsys.readouterr().err


def test_logs_with_user_ids_and_no_salt_exit_2_naming_the_variable(
    tmp_path: Path, capsys: pytest.CaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("FLYWHEEL_USER_SALT", raising=False)
    config = str(write_config(tmp_path))
    log = tmp_path / "app.jsonl"
    log.write_text(json.dumps(RECORD) + "\n")
    assert main(["logs", "add", "--config", config, str(log)]) == 2
    assert "export FLYWHEEL_USER_SALT=" in capsys.readouterr().err


def test_sandbox_traffic_writes_a_day_that_logs_add_reads_whole(
    tmp_path: Path, capsys: pytest.CaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FLYWHEEL_USER_SALT", "cli-salt")
    config = str(write_config(tmp_path))
    out = tmp_path / "traffic"
    args = ["sandbox", "traffic", "--config", config, "--out", str(out)]
    assert main([*args, "--day", "1", "--conversations", "25"]) == 0
    assert "5 arena, 5 messages records in 5 files" in capsys.readouterr().out
    logs = sorted(str(p) for p in out.glob("*.jsonl"))
    assert main(["logs", "add", "--config", config, *logs]) == 0
    assert ", 0 records skipped;" in capsys.readouterr().out
    assert main([*args, "--day", "0"]) == 2
    assert "must be 1 or more" in capsys.readouterr().err
