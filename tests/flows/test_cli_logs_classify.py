"""`flywheel logs classify`: the sandbox's users' day read for implicit feedback over HTTP, exit 0;
a rerun sends nothing; `logs add` classifies when logs.classify is on; a classifier model the
sandbox lacks exits 2 naming the fix; failed calls exit 1."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from flywheel.flows.cli import main
from flywheel.warehouse.store import connect
from tests.flows.test_cli import write_config


def traffic_day(tmp_path: Path, config: str, n_conversations: int = 20) -> list[str]:
    out = tmp_path / "traffic"
    args = ["sandbox", "traffic", "--config", config, "--out", str(out), "--day", "1"]
    assert main([*args, "--conversations", str(n_conversations)]) == 0
    return sorted(str(p) for p in out.glob("*.jsonl"))


def count(summary: str, what: str) -> int:
    found = re.search(rf"([0-9,]+) {what}", summary)
    assert found is not None, summary
    return int(found.group(1).replace(",", ""))


def test_logs_classify_reads_the_days_turns_once(
    tmp_path: Path, capsys: pytest.CaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FLYWHEEL_USER_SALT", "cli-salt")
    config = str(write_config(tmp_path))
    assert main(["logs", "add", "--config", config, *traffic_day(tmp_path, config)]) == 0
    assert "implicit feedback" not in capsys.readouterr().out  # logs.classify is off
    assert main(["logs", "classify", "--config", config]) == 0
    first = capsys.readouterr().out
    # the same answer and next turn logged in two records is one call
    assert 0 < count(first, "calls sent") <= count(first, "pairs read")
    assert count(first, "labelled") > 0 and count(first, "failed calls") == 0
    assert main(["logs", "classify", "--config", config]) == 0
    second = capsys.readouterr().out
    assert count(second, "calls sent") == 0 and count(second, "labelled") == 0
    with connect(str(tmp_path / "flywheel.duckdb"), read_only=True) as con:
        stored = con.execute("select count(*) from feedback where source = 'implicit'").fetchone()
    assert stored[0] == count(first, "labelled")


def test_logs_add_classifies_when_logs_classify_is_on(
    tmp_path: Path, capsys: pytest.CaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FLYWHEEL_USER_SALT", "cli-salt")
    config = str(write_config(tmp_path, logs={"classify": True}))
    assert main(["logs", "add", "--config", config, *traffic_day(tmp_path, config, 10)]) == 0
    out = capsys.readouterr().out
    assert "logs ('logs'):" in out and count(out, "labelled") > 0


def test_a_classifier_model_the_sandbox_lacks_exits_2(
    tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    classifier = {"name": "classifier", "model": "no-such-model"}
    config = str(write_config(tmp_path, logs={"classifier": classifier}))
    assert main(["logs", "classify", "--config", config]) == 2
    err = capsys.readouterr().err
    assert "endpoint 'classifier' uses the sandbox but sandbox.models has no 'no-such-model'" in err
    assert "add it under sandbox.models or change its model" in err


def test_failed_classifier_calls_exit_1(
    tmp_path: Path, capsys: pytest.CaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FLYWHEEL_USER_SALT", "cli-salt")
    classifier = {"name": "classifier", "model": "down", "max_retries": 0}
    config = str(
        write_config(
            tmp_path,
            logs={"classifier": classifier},
            sandbox__models__down={"role": "judge", "rate_500": 1.0},
        )
    )
    assert main(["logs", "add", "--config", config, *traffic_day(tmp_path, config, 10)]) == 0
    assert main(["logs", "classify", "--config", config]) == 1
    out = capsys.readouterr().out
    assert count(out, "failed calls") == count(out, "pairs read") > 0
