"""Logs into the warehouse: idempotent by content, read on when a file grows, never half a
line; private before storage; logged prompts into the pool through its own ingest."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from flywheel.config import Config
from flywheel.errors import InputError
from flywheel.pool.ingest import add_prompt_records
from flywheel.pool.logs_ingest import add_configured_logs, add_log_files
from flywheel.warehouse.contracts import contract_violations
from flywheel.warehouse.store import connect
from tests.conftest import load_config_in


def chat(conversation_id: str, question: str, answer: str, **extra) -> dict:
    return {
        "id": conversation_id,
        "messages": [
            {"role": "user", "content": question},
            {"role": "assistant", "content": answer, "feedback": extra.pop("thumb", None)},
        ],
        **extra,
    }


def write_log(path: Path, records: list[dict], tail: str = "") -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in records) + tail, encoding="utf-8")
    return path


def rows(config: Config, query: str) -> list[tuple]:
    with connect(config.warehouse.path, read_only=True) as con:
        return con.execute(query).fetchall()


@pytest.fixture
def config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Config:
    monkeypatch.setenv("FLYWHEEL_USER_SALT", "test-salt")
    return load_config_in(tmp_path)


def test_a_file_added_twice_or_copied_adds_nothing_the_second_time(
    config: Config, tmp_path: Path
) -> None:
    log = write_log(tmp_path / "day1.jsonl", [chat("c1", "What is 2 + 3?", "5", thumb="up")])
    first = add_log_files(config, [log])
    again = add_log_files(config, [log])
    copy = add_log_files(config, [shutil.copy(log, tmp_path / "copy.jsonl")])
    assert (first.n_conversations, first.n_feedback) == (1, 1)
    assert (again.n_files_unchanged, again.n_records) == (1, 0)
    assert (copy.n_files_unchanged, copy.n_records) == (1, 0)
    assert rows(config, "select count(*) from log_files") == [(1,)]


def test_a_grown_file_adds_only_its_new_complete_records(config: Config, tmp_path: Path) -> None:
    half = '{"id": "c3", "messages": [{"role": "user", "content": "Hal'
    log = write_log(tmp_path / "live.jsonl", [chat("c1", "What is 1 + 1?", "2")], tail=half)
    first = add_log_files(config, [log])
    assert (first.n_records, first.n_partial_lines) == (1, 1)
    completed = 'f?"}, {"role": "assistant", "content": "Half."}]}\n'
    with log.open("a", encoding="utf-8") as handle:
        handle.write(completed + json.dumps(chat("c4", "What is 4 + 4?", "8")) + "\n")
    grown = add_log_files(config, [log])
    assert (grown.n_records, grown.n_conversations, grown.n_conversations_known) == (2, 2, 0)
    assert rows(
        config, "select resumed_from > 0, lines_read from log_files order by lines_read"
    ) == [
        (False, 1),
        (True, 3),
    ]
    assert rows(config, "select content from log_turns where turn_index = 0 order by 1") == [
        ("Half?",),
        ("What is 1 + 1?",),
        ("What is 4 + 4?",),
    ]


def test_a_changed_prefix_is_read_again_without_storing_twice(
    config: Config, tmp_path: Path
) -> None:
    log = write_log(tmp_path / "day.jsonl", [chat("c1", "What is 1 + 1?", "2")])
    add_log_files(config, [log])
    write_log(log, [chat("c1", "What is 1 + 1?", "2"), chat("c2", "Name a prime.", "7")][::-1])
    again = add_log_files(config, [log])
    assert (again.n_records, again.n_conversations, again.n_conversations_known) == (2, 1, 1)


def test_feedback_on_its_own_joins_its_run_or_is_named_with_its_line(
    config: Config, tmp_path: Path
) -> None:
    run = {
        "id": "run-1",
        "inputs": {"input": "Reverse the word cat."},
        "outputs": {"output": "tac"},
    }
    records = [
        run,
        {"run_id": "run-1", "key": "user_score", "score": 1},
        {"run_id": "run-404", "key": "user_score", "score": 0},
    ]
    report = add_log_files(config, [write_log(tmp_path / "runs.jsonl", records)])
    assert report.n_feedback == 1
    (problem,) = report.problems
    assert problem.line_no == 3
    assert "no logged conversation has the id 'run-404'" in problem.reason
    assert rows(config, "select turn_index, label, feedback_key from feedback") == [
        (1, "positive", "user_score")
    ]


def test_personal_data_is_redacted_before_storage_and_counted_per_file(
    config: Config, tmp_path: Path
) -> None:
    record = chat(
        "c1",
        "I am bob@example.com, card 4111 1111 1111 1111. What is 2 + 2?",
        "4",
        thumb={"rating": 0, "correction": "Call +1 415-555-0132 for 4"},
        user_id="bob",
    )
    report = add_log_files(config, [write_log(tmp_path / "pii.jsonl", [record])])
    assert dict(report.redactions) == {"email": 1, "credit_card": 1, "phone": 1}
    stored = rows(config, "select content from log_turns where role = 'user'")
    assert stored == [("I am [EMAIL], card [CREDIT_CARD]. What is 2 + 2?",)]
    assert rows(config, "select correction from feedback") == [("Call [PHONE] for 4",)]
    assert rows(config, "select n_redacted, redactions from log_files") == [
        (3, '{"email": 1, "phone": 1, "credit_card": 1, "secret": 0}')
    ]
    (user_hash,) = rows(config, "select user_hash from log_conversations")[0]
    assert "bob" not in user_hash and len(user_hash) == 64
    everything = json.dumps(rows(config, "select * from prompts"), default=str)
    assert "bob@example.com" not in everything and "4111" not in everything


def test_redaction_off_stores_the_text_as_logged(tmp_path: Path) -> None:
    config = load_config_in(tmp_path, logs={"redact": False})
    add_log_files(config, [write_log(tmp_path / "a.jsonl", [chat("c1", "mail a@b.io", "ok")])])
    assert rows(config, "select content from log_turns where role = 'user'") == [("mail a@b.io",)]


def test_a_user_id_without_a_salt_is_refused_before_anything_is_stored(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("FLYWHEEL_USER_SALT", raising=False)
    config = load_config_in(tmp_path)
    log = write_log(tmp_path / "u.jsonl", [chat("c1", "Hi?", "Hello", user_id="ann")])
    with pytest.raises(InputError, match="line 1 has a user id.*export FLYWHEEL_USER_SALT="):
        add_log_files(config, [log])
    assert rows(config, "select count(*) from log_conversations") == [(0,)]


def test_logged_prompts_join_the_pool_deduplicated_and_decontaminated(
    config: Config, tmp_path: Path
) -> None:
    add_prompt_records(config, [{"prompt": "What is 12 + 30?"}], "eval-set", split="eval")
    records = [
        chat("c1", "What is 12 + 30?", "42"),  # an eval prompt: contaminated, never trained on
        chat("c2", "Name a prime number.", "7"),
        chat("c3", "Name a prime number.", "11"),  # the same prompt twice: one pool row
    ]
    add_log_files(config, [write_log(tmp_path / "p.jsonl", records)])
    assert rows(config, "select source, split from prompts order by prompt_text") == [
        ("logs", "pool"),
        ("eval-set", "eval"),
    ]
    assert rows(config, "select count(distinct prompt_id) from log_conversations") == [(2,)]
    with connect(config.warehouse.path, read_only=True) as con:
        assert contract_violations(con) == []


def test_configured_globs_are_read_at_a_rounds_start(tmp_path: Path) -> None:
    folder = tmp_path / "logs"
    folder.mkdir()
    config = load_config_in(tmp_path, logs={"paths": [str(folder / "*.jsonl")]})
    assert add_configured_logs(config).n_files == 0
    write_log(folder / "a.jsonl", [chat("c1", "What is 1 + 2?", "3")])
    write_log(folder / "b.jsonl", [chat("c2", "What is 2 + 2?", "4")])
    report = add_configured_logs(config)
    assert (report.n_files, report.n_conversations) == (2, 2)
    assert add_configured_logs(load_config_in(tmp_path)) is None  # no logs.paths: nothing read


def test_analyst_views_count_feedback_per_day_category_and_model(
    config: Config, tmp_path: Path
) -> None:
    records = [
        chat("c1", "What is 1 + 1?", "2", thumb="up", model="r1", timestamp="2026-12-01T08:00Z"),
        chat("c2", "What is 1 + 2?", "4", thumb="down", model="r1", timestamp="2026-12-01T09:00Z"),
        chat("c3", "What is 1 + 3?", "4", thumb=5, model="r2", timestamp="2026-12-02T09:00Z"),
        chat("c4", "What is 1 + 4?", "5", model="r2", timestamp="2026-12-02T10:00Z"),
    ]
    add_log_files(config, [write_log(tmp_path / "v.jsonl", records)])
    assert rows(config, "select cast(day as varchar), label, n_feedback from v_feedback_daily") == [
        ("2026-12-01", "negative", 1),
        ("2026-12-01", "positive", 1),
        ("2026-12-02", "positive", 1),
    ]
    assert rows(
        config, "select source, category, n_positive, n_negative from v_feedback_by_category"
    ) == [
        ("explicit", "score", 1, 0),
        ("explicit", "thumb", 1, 1),
    ]
    assert rows(config, "select * from v_feedback_by_model") == [
        ("r1", 2, 2, 1, 1, 0.5),
        ("r2", 2, 1, 1, 0, 1.0),
    ]


def test_an_opening_the_pool_refuses_leaves_the_conversation_without_a_prompt(
    config: Config, tmp_path: Path
) -> None:
    two_questions = {
        "id": "c9",
        "messages": [
            {"role": "user", "content": "Hello?"},
            {"role": "user", "content": "Anyone there?"},
            {"role": "assistant", "content": "Yes."},
        ],
    }
    records = [two_questions, chat("c1", "What is 5 + 5?", "10")]
    report = add_log_files(config, [write_log(tmp_path / "r.jsonl", records)])
    assert "1 malformed" in report.prompt_summary
    assert rows(
        config, "select external_id, prompt_id is null from log_conversations order by 1"
    ) == [
        ("c1", False),
        ("c9", True),
    ]
    with connect(config.warehouse.path, read_only=True) as con:
        assert contract_violations(con) == []


def test_a_json_array_export_and_a_gzipped_log_are_read(config: Config, tmp_path: Path) -> None:
    import gzip

    array = tmp_path / "runs.json"
    array.write_text(json.dumps([chat("c1", "What is 3 + 3?", "6"), chat("c2", "Hi?", "Hello")]))
    zipped = tmp_path / "day.jsonl.gz"
    zipped.write_bytes(
        gzip.compress((json.dumps(chat("c3", "What is 9 - 2?", "7")) + "\n").encode())
    )
    report = add_log_files(config, [array, zipped])
    assert (report.n_records, report.n_conversations) == (3, 3)
    assert add_log_files(config, [array, zipped]).n_files_unchanged == 2
    broken = tmp_path / "broken.json"
    broken.write_text('[{"id": "c4", "messages": [')
    with pytest.raises(InputError, match="starts a JSON array but is not valid JSON"):
        add_log_files(config, [broken])


def three_batches(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[Config, Path]:
    """A config reading one record a batch, and a log of three conversations."""
    monkeypatch.setenv("FLYWHEEL_USER_SALT", "test-salt")
    config = load_config_in(tmp_path, prompts={"batch_size": 1})
    log = write_log(
        tmp_path / "big.jsonl", [chat(f"c{i}", f"What is {i} + 1?", "x") for i in range(3)]
    )
    return config, log


def test_a_read_stopped_mid_file_resumes_after_its_last_stored_batch(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import flywheel.pool.logs_ingest as logs_ingest

    config, log = three_batches(tmp_path, monkeypatch)
    real_append, calls = logs_ingest.append_new_conversations, []

    def append_then_stop(con, batch, stored):
        calls.append(1)
        if len(calls) == 2:
            raise KeyboardInterrupt  # the second batch's transaction never commits
        return real_append(con, batch, stored)

    monkeypatch.setattr(logs_ingest, "append_new_conversations", append_then_stop)
    with pytest.raises(KeyboardInterrupt):
        add_log_files(config, [log])
    monkeypatch.setattr(logs_ingest, "append_new_conversations", real_append)
    resumed = add_log_files(config, [log])
    assert (resumed.n_records, resumed.n_conversations, resumed.n_conversations_known) == (2, 2, 0)
    assert rows(config, "select resumed_from > 0 from log_files order by bytes_read") == [
        (False,),
        (True,),
        (True,),
    ]


def test_each_batch_records_the_hash_of_the_file_up_to_its_end_and_names_problems_in_order(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import hashlib

    monkeypatch.setenv("FLYWHEEL_USER_SALT", "test-salt")
    config = load_config_in(tmp_path, prompts={"batch_size": 2})
    lines = [
        json.dumps(chat("c1", "What is 1 + 1?", "2")),
        "{not json",
        json.dumps(chat("c2", "What is 2 + 2?", "4")),
        json.dumps({"run_id": "run-404", "key": "user_score", "score": 0}),
        json.dumps({"neither": "format"}),
        json.dumps(chat("c3", "What is 3 + 3?", "6")),
    ]
    log = tmp_path / "mixed.jsonl"
    log.write_text("".join(line + "\n" for line in lines), encoding="utf-8")
    report = add_log_files(config, [log])
    assert [p.line_no for p in report.problems] == [2, 4, 5]
    assert report.n_conversations == 3
    content = log.read_bytes()
    recorded = rows(config, "select bytes_read, lines_read, file_sha256 from log_files")
    assert sorted(recorded) == [
        (end, n_lines, hashlib.sha256(content[:end]).hexdigest())
        for end, n_lines in [
            (len("".join(f"{line}\n" for line in lines[:n]).encode()), n) for n in (2, 4, 6)
        ]
    ]


def test_prompts_of_an_add_stopped_before_the_pool_took_them_join_at_the_next_add(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from flywheel.pool import ingest

    config, log = three_batches(tmp_path, monkeypatch)

    def stop(*_args):
        raise KeyboardInterrupt  # the pool's first batch never commits

    with monkeypatch.context() as patched:
        patched.setattr(ingest._Ingest, "_ingest_batch", stop)
        with pytest.raises(KeyboardInterrupt):
            add_log_files(config, [log])
    assert rows(config, "select count(*) from prompts") == [(0,)]
    assert rows(config, "select count(*) > 0 from log_conversations") == [(True,)]
    add_log_files(config, [log])
    assert rows(config, "select count(*) from prompts") == [(3,)]
    orphans = (
        "select count(*) from log_conversations "
        "where prompt_id is null or prompt_id not in (select prompt_id from prompts)"
    )
    assert rows(config, orphans) == [(0,)]
