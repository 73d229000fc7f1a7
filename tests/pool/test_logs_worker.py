"""A large log file is built in a worker process: the same rows as in-process, its errors raised
in the ingest, a grown file read on from where it stopped, a dead worker named."""

from __future__ import annotations

import multiprocessing
import os
from pathlib import Path

import pytest

from flywheel.config import Config
from flywheel.errors import InputError
from flywheel.pool import logs_worker
from flywheel.pool.logs_ingest import add_log_files
from tests.conftest import load_config_in
from tests.pool.test_logs_ingest import chat, rows, write_log

TABLES = {
    "log_files": "select file_sha256, bytes_read, lines_read, resumed_from, n_records, "
    "n_conversations, n_feedback, n_malformed, n_redacted from log_files order by bytes_read",
    "log_conversations": "select conversation_id, log_format, user_hash, n_turns, prompt_id, "
    "line_no, file_sha256 from log_conversations order by conversation_id",
    "log_turns": "select * from log_turns order by conversation_id, turn_index",
    "feedback": "select feedback_id, conversation_id, turn_index, label, comment, file_sha256 "
    "from feedback order by feedback_id",
    "prompts": "select prompt_id, messages, status from prompts order by prompt_id",
}


def day_of_logs(first: int, n: int) -> list[dict]:
    return [
        chat(
            f"c{i}",
            f"Question {i}: what is {i} + {i}? Mail me at user{i}@example.com",
            f"{2 * i}",
            thumb="up" if i % 2 else "down",
            user_id=f"user-{i % 3}",
        )
        for i in range(first, first + n)
    ]


def ingest_all(config: Config, log: Path, min_bytes: int, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setattr(logs_worker, "WORKER_MIN_BYTES", min_bytes)
    return add_log_files(config, [log])


def stored(config: Config) -> dict[str, list[tuple]]:
    return {table: rows(config, query) for table, query in TABLES.items()}


def test_a_file_built_in_a_worker_stores_the_rows_it_would_in_process(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FLYWHEEL_USER_SALT", "test-salt")
    in_process = load_config_in(tmp_path / "here", prompts={"batch_size": 4})
    in_worker = load_config_in(tmp_path / "worker", prompts={"batch_size": 4})
    log = write_log(tmp_path / "day.jsonl", day_of_logs(0, 10), tail="{half a line")
    here = ingest_all(in_process, log, 1 << 40, monkeypatch)
    there = ingest_all(in_worker, log, 0, monkeypatch)
    assert stored(in_worker) == stored(in_process)
    assert (there.n_conversations, there.n_feedback, there.n_partial_lines) == (10, 10, 1)
    assert there.redactions == here.redactions and there.redactions["email"] == 10
    assert len(stored(in_worker)["log_files"]) == 3  # batches of 4, 4 and 2 records


def test_a_grown_file_is_read_on_by_the_worker_from_where_the_last_read_stopped(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FLYWHEEL_USER_SALT", "test-salt")
    config = load_config_in(tmp_path / "w", prompts={"batch_size": 3})
    log = write_log(tmp_path / "grows.jsonl", day_of_logs(0, 4))
    ingest_all(config, log, 0, monkeypatch)
    write_log(log, day_of_logs(0, 7))  # three more records at the end
    grown = ingest_all(config, log, 0, monkeypatch)
    assert (grown.n_records, grown.n_conversations, grown.n_conversations_known) == (3, 3, 0)
    reference = load_config_in(tmp_path / "whole", prompts={"batch_size": 3})
    ingest_all(reference, log, 1 << 40, monkeypatch)
    hashes = "select file_sha256, bytes_read from log_files order by bytes_read"
    assert rows(config, hashes)[-1] == rows(reference, hashes)[-1]  # the whole file's hash
    assert rows(config, "select count(*) from prompts") == [(7,)]


def test_an_error_in_the_worker_is_raised_and_nothing_of_its_batch_is_stored(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("FLYWHEEL_USER_SALT", raising=False)
    config = load_config_in(tmp_path)
    log = write_log(tmp_path / "u.jsonl", day_of_logs(0, 2))
    with pytest.raises(InputError, match="line 1 has a user id.*export FLYWHEEL_USER_SALT="):
        ingest_all(config, log, 0, monkeypatch)
    assert rows(config, "select count(*) from log_conversations") == [(0,)]


def test_a_worker_that_dies_is_named_with_its_file_and_exit_code() -> None:
    context = multiprocessing.get_context("spawn")
    queue = context.Queue()
    worker = context.Process(target=os._exit, args=(3,))
    worker.start()
    worker.join()
    with pytest.raises(RuntimeError, match=r"log file 'day\.jsonl' stopped \(exit code 3\)"):
        logs_worker._next_message(queue, worker, "day.jsonl")
