"""A round starts by reading the night's production logs, so their prompts can be drawn."""

from __future__ import annotations

from pathlib import Path

from flywheel.flows.round import read_new_logs
from flywheel.warehouse.store import connect
from tests.conftest import load_config_in
from tests.pool.test_logs_ingest import chat, write_log


def test_the_rounds_logs_step_puts_logged_prompts_in_the_pool_once(tmp_path: Path) -> None:
    folder = tmp_path / "logs"
    folder.mkdir()
    write_log(folder / "day.jsonl", [chat("c1", "What is 17 + 25?", "42", thumb="up")])
    config = load_config_in(tmp_path, logs={"paths": [str(folder / "*.jsonl")]})
    read_new_logs.fn(config)
    read_new_logs.fn(config)  # a resumed round reads the same files again: nothing new
    with connect(config.warehouse.path, read_only=True) as con:
        pooled = con.execute(
            "select prompt_text, split from prompts where source = 'logs'"
        ).fetchall()
        logged = con.execute("select count(*) from log_conversations").fetchone()[0]
    assert pooled == [("What is 17 + 25?", "pool")]
    assert logged == 1
