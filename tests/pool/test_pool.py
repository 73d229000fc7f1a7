"""The prompt pool on literal files: dedup, decontamination, malformed input, the eval split."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from flywheel.config import Config
from flywheel.errors import InputError
from flywheel.pool import ingest as ingest_module
from flywheel.pool.dedup import (
    BandIndex,
    choose_bands,
    featurize,
    jaccard,
    lsh_params,
    self_candidates,
    shingle_sets,
)
from flywheel.pool.eval_set import (
    PoolExhaustedError,
    ensure_eval_split,
    eval_prompt_ids,
    prompt_stats,
)
from flywheel.pool.ingest import add_prompt_file, add_prompt_records
from flywheel.pool.normalise import messages_json, normalise_text, prompt_id_of
from flywheel.pool.records import PromptFileError
from flywheel.pool.report import NoValidRecordError
from flywheel.warehouse.store import connect
from tests.conftest import load_config_in

DATA = Path(__file__).parent / "data" / "prompts"


def rows(config: Config, sql: str, params: list | None = None) -> list[tuple]:
    with connect(config.warehouse.path) as con:
        return con.execute(sql, params or []).fetchall()


def line_prompt(config: Config, path: Path, line_no: int) -> tuple:
    """(prompt_id, status, duplicate_of, contaminated_by, split) of one line of an added file."""
    found = rows(
        config,
        "select p.prompt_id, p.status, p.duplicate_of, p.contaminated_by, p.split "
        "from prompt_occurrences as o join prompts as p using (prompt_id) "
        "where o.file_path = ? and o.line_no = ?",
        [str(path.resolve()), line_no],
    )
    assert len(found) == 1, f"line {line_no} of {path.name} has no occurrence"
    return found[0]


def counts(report) -> tuple[int, int, int, int, int, int]:
    return (
        report.n_added,
        report.n_exact_duplicates,
        report.n_near_duplicates,
        report.n_contaminated,
        report.n_malformed,
        report.n_already_ingested,
    )


def write_jsonl(path: Path, records: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")
    return path


def story(key: int | str, topic: str = "robot") -> str:
    """A distinct 30-odd word prompt (no two keys share a 3-word shingle)."""
    words = " ".join(f"w{key}x{k}" for k in range(30))
    return f"Tell a story about a {topic} named {words}."


# ---------------------------------------------------------------------------- pure helpers


def test_normalisation_collapses_whitespace_and_keeps_case():
    assert normalise_text("  Cafe\u0301\t au\n\n lait ") == "Café au lait"
    assert prompt_id_of([{"role": "user", "content": "Hi  there"}]) == prompt_id_of(
        [{"role": "user", "content": " Hi there\n"}]
    )
    assert prompt_id_of([{"role": "user", "content": "Hi"}]) != prompt_id_of(
        [{"role": "user", "content": "hi"}]
    )


def test_messages_json_equals_compact_json_dumps():
    messages = [
        {"role": "system", "content": 'Say "hi"\n\tthen \\ stop \u00e9\u4e2d \x01'},
        {"role": "user", "content": "plain"},
    ]
    expected = json.dumps(messages, ensure_ascii=False, separators=(",", ":"))
    assert messages_json(messages) == expected
    assert json.loads(messages_json(messages)) == messages


def test_bands_keep_recall_at_the_threshold():
    assert choose_bands(0.8, 128) == (21, 6)
    bands, rows_per_band = choose_bands(0.8, 128)
    assert 1 - (1 - 0.8**rows_per_band) ** bands >= 0.99


def test_one_word_change_in_a_long_prompt_is_above_threshold_and_found_by_lsh():
    params = lsh_params(0.8, 128, 3)
    base = story(1)
    edited = base.replace("w1x15", "changed")
    features = featurize([base, edited, story(2)], params)
    assert jaccard(features.shingle_set(0), features.shingle_set(1)) >= 0.8
    found = self_candidates(features.band_keys, max_bucket=64, max_per_doc=16)
    assert list(zip(found.doc.tolist(), found.item.tolist(), strict=True)) == [(1, 0)]


def test_self_candidates_match_brute_force_band_sharing():
    rng = np.random.default_rng(0)
    values = rng.integers(0, 6, size=(40, 3))  # many collisions
    keys = (values + 100 * np.arange(3)).astype(np.uint64)  # like real keys: salted per band
    found = self_candidates(keys, max_bucket=1000, max_per_doc=1000)
    expected = {
        (d, e): int((values[d] == values[e]).sum())
        for d in range(40)
        for e in range(d)
        if (values[d] == values[e]).any()
    }
    got = {(d, e): s for d, e, s in zip(found.doc, found.item, found.n_shared_bands, strict=True)}
    assert got == expected


def test_band_index_merges_runs_and_finds_every_stored_item():
    index = BandIndex()
    rng = np.random.default_rng(1)
    all_keys = rng.integers(0, 2**63, size=(1000, 4), dtype=np.uint64)
    for start in range(0, 1000, 100):
        index.add(all_keys[start : start + 100], np.arange(start, start + 100))
    assert len(index) == 4000
    found = index.query(all_keys[[5, 555, 999]], max_bucket=8, max_per_doc=4)
    assert found.item.tolist() == [5, 555, 999]
    assert found.n_shared_bands.tolist() == [4, 4, 4]


def test_shingle_sets_ignore_case_and_punctuation_but_keep_decimals_and_symbols():
    plain, shouted, decimal = shingle_sets(["pi is 3.14 ok", "PI, is 3.14 ok!", "pi is 3 14 ok"], 3)
    assert plain == shouted
    assert plain != decimal
    plus, minus = shingle_sets(["What is 12 + 35?", "What is 12 - 35?"], 3)
    assert jaccard(plus, minus) < 0.5


# ---------------------------------------------------------------------- ingest: literal files


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


def test_eval_prompts_pasted_into_the_pool_are_contaminated_with_the_match(smoke_config):
    add_prompt_file(smoke_config, DATA / "eval.jsonl", split="eval")
    path = DATA / "pool_contaminated.jsonl"
    report = add_prompt_file(smoke_config, path)
    assert counts(report) == (1, 0, 0, 3, 0, 0)
    eval_path = DATA / "eval.jsonl"
    train_id, edited_id, passage_id = (
        line_prompt(smoke_config, eval_path, n)[0] for n in (1, 2, 3)
    )
    assert line_prompt(smoke_config, path, 1)[1:4] == ("contaminated", None, train_id)
    assert line_prompt(smoke_config, path, 2)[1:4] == ("contaminated", None, edited_id)
    assert line_prompt(smoke_config, path, 3)[0] == passage_id  # verbatim: the eval row itself
    assert line_prompt(smoke_config, path, 4)[1] == "active"
    assert len(eval_prompt_ids(smoke_config)) == 3


def test_eval_prompts_added_after_the_pool_decontaminate_it(smoke_config):
    pool = DATA / "pool_contaminated.jsonl"
    add_prompt_file(smoke_config, pool)
    report = add_prompt_file(smoke_config, DATA / "eval.jsonl", split="eval")
    assert report.n_added == 3  # one of them was in the pool, unbattled: it moved to eval
    assert report.n_pool_decontaminated == 2
    assert "2 pool prompts overlap the eval set" in report.summary()
    assert [line_prompt(smoke_config, pool, n)[1] for n in (1, 2, 4)] == [
        "contaminated",
        "contaminated",
        "active",
    ]
    assert line_prompt(smoke_config, pool, 3)[4] == "eval"
    assert ensure_eval_split(smoke_config) == 3  # user eval prompts: nothing is drawn


# ------------------------------------------------------------------------ eval split, slices


def fill_pool(config: Config, n_per_category: dict[str, int]) -> None:
    records = [
        {"prompt": story(f"{category}{i}", topic=category), "category": category}
        for category, n in n_per_category.items()
        for i in range(n)
    ]
    report = add_prompt_records(config, records, source="synthetic")
    assert report.n_added == len(records)


def test_eval_split_is_stratified_seeded_and_fixed_once_drawn(tmp_path):
    config = load_config_in(tmp_path, prompts={"eval_size": 10, "slice_size": 5})
    fill_pool(config, {"a": 30, "b": 15, "c": 5})
    assert ensure_eval_split(config) == 10
    drawn = eval_prompt_ids(config)
    by_category = dict(
        rows(config, "select category, count(*) from prompts where split = 'eval' group by all")
    )
    assert by_category == {"a": 6, "b": 3, "c": 1}
    fill_pool(config, {"d": 20})
    assert ensure_eval_split(config) == 10 and eval_prompt_ids(config) == drawn
    twin = load_config_in(tmp_path / "twin", prompts={"eval_size": 10, "slice_size": 5})
    fill_pool(twin, {"a": 30, "b": 15, "c": 5})
    ensure_eval_split(twin)
    assert eval_prompt_ids(twin) == drawn


def test_drawing_the_eval_set_decontaminates_the_pool(tmp_path):
    config = load_config_in(tmp_path, prompts={"eval_size": 1, "slice_size": 1})
    shared = " ".join(f"common{k}" for k in range(14))
    add_prompt_records(config, [{"prompt": f"first {shared} tail"}], source="a")
    add_prompt_records(config, [{"prompt": f"second prompt here {shared} end"}], source="b")
    ensure_eval_split(config)
    statuses = rows(config, "select split, status, contaminated_by from prompts order by split")
    eval_id = eval_prompt_ids(config)[0]
    assert statuses == [("eval", "active", None), ("pool", "contaminated", eval_id)]


def test_an_instruction_every_eval_prompt_carries_is_template_not_contamination(tmp_path):
    config = load_config_in(tmp_path, prompts={"eval_size": 1, "slice_size": 1})
    instruction = "Please reason step by step, and put your final answer within boxed braces."
    evals = [{"prompt": f"{story(f'e{i}', topic='math')} {instruction}"} for i in range(4)]
    add_prompt_records(config, evals, source="eval", split="eval")
    leaked = f"{story('e0', topic='math')} {instruction}".split()
    pool = [{"prompt": f"{story(f'p{i}', topic='math')} {instruction}"} for i in range(3)] + [
        {"prompt": " ".join(["Same words:", *leaked[:14], "and more."])}
    ]
    report = add_prompt_records(config, pool, source="pool")
    assert report.n_contaminated == 1  # the one that copies an eval prompt's own words
    statuses = rows(config, "select status from prompts where split = 'pool' order by status")
    assert statuses == [("active",)] * 3 + [("contaminated",)]


def test_an_eval_draw_from_a_too_small_pool_is_refused(tmp_path):
    config = load_config_in(tmp_path, prompts={"eval_size": 40})
    fill_pool(config, {"a": 10})
    with pytest.raises(PoolExhaustedError, match="30 missing.*--eval"):
        ensure_eval_split(config)


# ------------------------------------------------------------------------------ stats


def test_stats_count_sources_categories_splits_and_removals(smoke_config):
    add_prompt_file(smoke_config, DATA / "eval.jsonl", split="eval")
    add_prompt_file(smoke_config, DATA / "exact_duplicates.jsonl", source="colours")
    add_prompt_file(smoke_config, DATA / "near_duplicates.jsonl", source="mixed")
    add_prompt_file(smoke_config, DATA / "pool_contaminated.jsonl", source="leaky")
    tables = prompt_stats(smoke_config)
    assert list(tables) == ["summary", "by source", "by category", "by split, slice and status"]
    summary = tables["summary"].iloc[0]
    assert summary["n_records"] == 3 + 6 + 7 + 4
    assert summary["n_exact_duplicates_removed"] == 4 + 1
    assert summary["n_near_duplicates_removed"] == 3
    assert summary["n_contaminated_removed"] == 2
    assert summary["n_eval"] == 3 and summary["n_pool_active"] == 2 + 4 + 1
    by_source = tables["by source"].set_index("source")
    assert by_source.loc["leaky", "n_records"] == 4
    assert by_source.loc["leaky", "n_exact_duplicates"] == 1
    assert by_source.loc["colours", "n_exact_duplicates"] == 4
    by_split = tables["by split, slice and status"]
    assert set(by_split["status"]) == {"active", "near_duplicate", "contaminated"}
    assert "arithmetic" in set(tables["by category"]["category"])
