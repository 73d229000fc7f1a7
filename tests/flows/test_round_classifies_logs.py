"""The round's logs step classifies the implicit feedback of what it read, right after the
ingest, when logs.classify is on; a resumed round asks nothing again."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from flywheel.config import resolve_sandbox_endpoints
from flywheel.flows.round import read_new_logs
from flywheel.sandbox import classifier_replies
from flywheel.sandbox.server import start_sandbox
from flywheel.warehouse.store import connect
from tests.conftest import load_config_in

QUESTION = "What is 17 + 25? End your reply with a line of the form Answer: followed by the result."
RECORD = {
    "id": "c1",
    "messages": [
        {"role": "user", "content": QUESTION},
        {"role": "assistant", "content": "Answer: 43"},
        {"role": "user", "content": "No, that's wrong. The answer is 42."},
        {"role": "assistant", "content": "Answer: 42"},
    ],
}


def test_the_rounds_logs_step_classifies_new_turns_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(classifier_replies, "MISS_RATE", 0.0)
    monkeypatch.setattr(classifier_replies, "CONFUSIONS", {"correction": ("correction", 0.0)})
    monkeypatch.setattr(classifier_replies, "DESCRIBED_QUOTE_RATE", 0.0)
    folder = tmp_path / "logs"
    folder.mkdir()
    (folder / "day.jsonl").write_text(json.dumps(RECORD) + "\n", encoding="utf-8")
    config = load_config_in(tmp_path, logs={"paths": [str(folder / "*.jsonl")], "classify": True})
    query = """select (select count(*) from llm_calls),
                      (select list(category) from feedback where source = 'implicit')"""
    with start_sandbox(config.sandbox) as server:
        resolved = resolve_sandbox_endpoints(config, server.base_url)
        read_new_logs.fn(resolved)
        with connect(config.warehouse.path, read_only=True) as con:
            first = con.execute(query).fetchone()
        read_new_logs.fn(resolved)  # a resumed round: nothing new to read or ask
        with connect(config.warehouse.path, read_only=True) as con:
            again = con.execute(query).fetchone()
    assert first == again == (1, ["correction"])
