"""The prompt pool on literal files: exact and near duplicates, malformed input, refusals."""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from flywheel.config import Config
from flywheel.errors import InputError
from flywheel.pool import ingest as ingest_module
from flywheel.pool.ingest import add_prompt_file, add_prompt_records
from flywheel.pool.records import PromptFileError
from flywheel.pool.report import NoValidRecordError
from tests.conftest import load_config_in
from tests.pool.pool_helpers import DATA, counts, line_prompt, rows, story, write_jsonl


def test_exact_duplicates_are_stored_once_and_every_occurrence_is_kept(smoke_config):
    path = DATA / "exact_duplicates.jsonl"
    report = add_prompt_file(smoke_config, path, source="colours")
    assert counts(report) == (2, 4, 0, 0, 0, 0)
    first = line_prompt(smoke_config, path, 1)[0]
    assert {line_prompt(smoke_config, path, n)[0] for n in (2, 3, 4, 6)} == {first}
    assert rows(smoke_config, "select count(*) from prompts")[0][0] == 2
    assert rows(smoke_config, "select count(*) from prompt_occurrences")[0][0] == 6
    assert "2 added, 4 exact duplicates" in report.summary()


def test_adding_the_same_file_twice_adds_nothing(smoke_config):
    path = DATA / "near_duplicates.jsonl"
    add_prompt_file(smoke_config, path)
    before = rows(smoke_config, "select count(*) from prompts")[0][0]
    again = add_prompt_file(smoke_config, path)
    assert counts(again) == (0, 0, 0, 0, 0, 7)
    assert "Nothing new" in again.summary()
    assert rows(smoke_config, "select count(*) from prompts")[0][0] == before
    assert rows(smoke_config, "select count(*) from prompt_occurrences")[0][0] == 7


def test_near_duplicates_are_absorbed_by_the_first_prompt_and_traceable(smoke_config):
    path = DATA / "near_duplicates.jsonl"
    report = add_prompt_file(smoke_config, path, source="mixed")
    assert counts(report) == (4, 0, 3, 0, 0, 0)
    story_id, status, _, _, _ = line_prompt(smoke_config, path, 1)
    bill_id = line_prompt(smoke_config, path, 3)[0]
    assert status == "active"
    for line_no, kept in ((2, story_id), (4, story_id), (7, bill_id)):
        _, status, duplicate_of, _, _ = line_prompt(smoke_config, path, line_no)
        assert (status, duplicate_of) == ("near_duplicate", kept)
    # different sums are different prompts, however alike their words
    assert (
        line_prompt(smoke_config, path, 5)[1] == line_prompt(smoke_config, path, 6)[1] == "active"
    )


def test_near_duplicates_are_found_across_batches_and_files(tmp_path):
    config = load_config_in(tmp_path, prompts={"batch_size": 2})
    first = write_jsonl(tmp_path / "first.jsonl", [{"prompt": story(i)} for i in range(5)])
    second = write_jsonl(
        tmp_path / "second.jsonl",
        [{"prompt": story(3).replace("w3x10", "zzz")}, {"prompt": story(9)}, {"prompt": story(0)}],
    )
    assert counts(add_prompt_file(config, first)) == (5, 0, 0, 0, 0, 0)
    report = add_prompt_file(config, second)
    assert counts(report) == (1, 1, 1, 0, 0, 0)
    assert line_prompt(config, second, 1)[2] == line_prompt(config, first, 4)[0]


def test_malformed_lines_are_skipped_with_line_and_reason_and_valid_ones_kept(tmp_path):
    config = load_config_in(tmp_path, prompts={"max_chars": 300})
    path = DATA / "malformed.jsonl"
    report = add_prompt_file(config, path)
    assert report.n_records == 16  # the blank line 13 is not a record
    assert counts(report) == (5, 0, 0, 0, 11, 0)  # line 4 ends with an assistant turn: kept
    reasons = {p.line_no: p.reason for p in report.problems}
    assert sorted(reasons) == [2, 3, 5, 6, 7, 8, 9, 12, 14, 15, 16]
    assert reasons[2].startswith("bad JSON: Unterminated string")
    assert reasons[3].startswith("missing field: expected `prompt` (text), `messages`")
    assert reasons[3].endswith("found `text`. Nearest: rename `text` to `prompt`")
    assert reasons[5].startswith("wrong roles: turn 1 has role 'bot'")
    assert reasons[6] == "empty text: `prompt` is empty"
    assert reasons[7] == "too long: 347 characters (prompts.max_chars is 300)"
    assert reasons[8] == "not a JSON object (got an array)"
    assert (
        reasons[9]
        == "`prompt` must be text or a non-empty array of {role, content} turns (got a number)"
    )
    assert reasons[12] == "`messages` turn 1 needs a string `role` and a string `content`"
    assert reasons[14] == "has both `messages` and `prompt`; keep one"
    assert reasons[15].startswith("invalid UTF-8: `prompt` holds a lone surrogate")
    assert reasons[16] == "empty text: turn 1 (user) has no content"
    assert {line_prompt(config, path, n)[1] for n in (1, 4, 10, 11, 17)} == {"active"}
    summary = report.summary()
    assert "11 malformed (skipped)" in summary and "line 2: bad JSON" in summary


def stored_prompt_rows(config: Config) -> tuple[int, int]:
    """(prompts, occurrences) stored; (0, 0) when the warehouse was never created."""
    if not Path(config.warehouse.path).exists():
        return (0, 0)
    return rows(
        config,
        "select (select count(*) from prompts), (select count(*) from prompt_occurrences)",
    )[0]


@pytest.mark.parametrize("blank_lines", [False, True])
def test_empty_file_is_refused_naming_the_file(tmp_path, smoke_config, blank_lines):
    path = DATA / "empty.jsonl"
    if blank_lines:
        path = tmp_path / "blank.jsonl"
        path.write_text("\n  \n\n")
    with pytest.raises(NoValidRecordError) as refused:
        add_prompt_file(smoke_config, path)
    assert str(refused.value).startswith(f"prompt file {str(path)!r} is empty: no records")
    assert '{"prompt": "..."}' in str(refused.value)
    assert refused.value.report.n_records == 0
    assert stored_prompt_rows(smoke_config) == (0, 0)


@pytest.mark.parametrize("split", ["pool", "eval"])
def test_file_whose_every_record_is_malformed_is_refused_naming_the_first_bad_line(
    tmp_path, smoke_config, split
):
    path = tmp_path / "bad.jsonl"
    path.write_text('\n{"prompt": "unterminated\n{"text": "hello"}\n[1, 2]\n')
    with pytest.raises(NoValidRecordError) as refused:
        add_prompt_file(smoke_config, path, split=split)
    first_line, fix = str(refused.value).splitlines()
    assert first_line.startswith(
        f"prompt file {str(path)!r} has no valid record: all 3 are malformed, nothing added; "
        "the first is line 2: bad JSON: Unterminated string"
    )
    assert fix.startswith("Fix: make each line a JSON object such as")
    assert refused.value.report.n_malformed == 3
    assert [p.line_no for p in refused.value.report.problems] == [2, 3, 4]
    assert stored_prompt_rows(smoke_config) == (0, 0)


def test_a_refused_file_leaves_earlier_prompts_as_they_were(tmp_path, smoke_config):
    good = write_jsonl(tmp_path / "good.jsonl", [{"prompt": story(1)}, {"prompt": story(2)}])
    add_prompt_file(smoke_config, good)
    before = stored_prompt_rows(smoke_config)
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"text": "no prompt field"}\n')
    with pytest.raises(NoValidRecordError):
        add_prompt_file(smoke_config, bad)
    assert stored_prompt_rows(smoke_config) == before == (2, 2)


@pytest.mark.skipif(not Path("/proc/self/mem").exists(), reason="needs Linux /proc")
def test_a_file_that_cannot_be_read_raises_a_prompt_file_error(tmp_path, smoke_config):
    """Root reads through permission bits; /proc/self/mem is a regular file that root still
    cannot read from the start (EIO), a real unreadable file."""
    unreadable = tmp_path / "unreadable.jsonl"
    unreadable.symlink_to("/proc/self/mem")
    with pytest.raises(PromptFileError, match=r"cannot be read \(.*\)\. Fix: check") as refused:
        add_prompt_file(smoke_config, unreadable)
    assert isinstance(refused.value, InputError)


def test_prompt_file_errors_are_input_errors():
    assert issubclass(PromptFileError, InputError) and issubclass(NoValidRecordError, InputError)


def test_non_utf8_lines_are_reported_and_the_valid_line_is_kept(smoke_config):
    path = DATA / "latin1.jsonl"
    report = add_prompt_file(smoke_config, path)
    assert counts(report) == (1, 0, 0, 0, 2, 0)
    assert [p.line_no for p in report.problems] == [1, 3]
    assert report.problems[0].reason.startswith("invalid UTF-8 (byte 0xe9 at byte 38)")
    assert "save it as UTF-8" in report.problems[0].reason
    assert line_prompt(smoke_config, path, 2)[1] == "active"


def test_a_record_over_the_length_limit_is_rejected_and_its_neighbours_kept(tmp_path):
    config = load_config_in(tmp_path, prompts={"max_chars": 50})
    path = write_jsonl(
        tmp_path / "long.jsonl",
        [{"prompt": "short one"}, {"prompt": "x" * 51}, {"prompt": "y" * 50}],
    )
    report = add_prompt_file(config, path)
    assert counts(report) == (2, 0, 0, 0, 1, 0)
    assert report.problems[0].line_no == 2
    assert report.problems[0].reason == "too long: 51 characters (prompts.max_chars is 50)"


def test_unreadable_files_raise_a_clear_error(tmp_path, smoke_config):
    with pytest.raises(PromptFileError, match="does not exist"):
        add_prompt_file(smoke_config, tmp_path / "missing.jsonl")
    text = tmp_path / "prompts.txt"
    text.write_text("prompt\nhello\n")
    with pytest.raises(PromptFileError, match=r"unsupported extension '\.txt'.*\.jsonl"):
        add_prompt_file(smoke_config, text)
    utf16 = tmp_path / "utf16.jsonl"
    utf16.write_bytes('{"prompt": "hi"}\n'.encode("utf-16"))
    with pytest.raises(PromptFileError, match="UTF-16.*iconv"):
        add_prompt_file(smoke_config, utf16)
    no_prompt = tmp_path / "other.parquet"
    pq.write_table(pa.table({"question": ["hi"]}), no_prompt)
    with pytest.raises(PromptFileError, match="no `prompt`, `messages`, `conversations` or"):
        add_prompt_file(smoke_config, no_prompt)


def test_parquet_rows_are_ingested_like_jsonl_lines(smoke_config, tmp_path):
    path = tmp_path / "chat.parquet"
    table = pa.table(
        {
            "messages": [
                [{"role": "user", "content": "Define a prime number."}],
                [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Why?"}],
                [{"role": "assistant", "content": "Hello"}],
            ],
            "category": ["math", None, "chat"],
        }
    )
    pq.write_table(table, path)
    report = add_prompt_file(smoke_config, path)
    assert counts(report) == (2, 0, 0, 0, 1, 0)
    assert report.problems[0].line_no == 3 and report.problems[0].reason.startswith("wrong roles")
    stored = rows(smoke_config, "select category, prompt_text from prompts order by prompt_text")
    assert stored == [("math", "Define a prime number."), (None, "Why?")]


def test_in_memory_records_take_the_same_path_and_are_idempotent(smoke_config):
    records = [{"prompt": "What is 2 + 3?", "category": "arithmetic"}] * 2 + [{"prompt": ""}]
    first = add_prompt_records(smoke_config, records, source="sandbox")
    assert counts(first) == (1, 1, 0, 0, 1, 0)
    assert first.problems[0].line_no == 3
    again = add_prompt_records(smoke_config, records, source="sandbox")
    assert counts(again) == (0, 0, 0, 0, 1, 2)
    assert rows(smoke_config, "select source, category from prompts") == [("sandbox", "arithmetic")]


def test_an_interrupted_ingest_resumes_without_losing_or_doubling(tmp_path, monkeypatch):
    config = load_config_in(tmp_path, prompts={"batch_size": 2})
    path = write_jsonl(tmp_path / "five.jsonl", [{"prompt": story(i)} for i in range(5)])
    real_write = ingest_module._Ingest._write
    calls = {"n": 0}

    def failing_write(self, *args):
        calls["n"] += 1
        if calls["n"] == 2:
            raise RuntimeError("disk full")
        return real_write(self, *args)

    monkeypatch.setattr(ingest_module._Ingest, "_write", failing_write)
    with pytest.raises(RuntimeError, match="disk full"):
        add_prompt_file(config, path)
    monkeypatch.setattr(ingest_module._Ingest, "_write", real_write)
    report = add_prompt_file(config, path)
    assert counts(report) == (3, 0, 0, 0, 0, 2)
    assert rows(config, "select count(*), count(distinct prompt_id) from prompts") == [(5, 5)]


# ------------------------------------------------------------------------ decontamination
