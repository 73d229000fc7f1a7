"""insert_new takes a list of dicts or a DataFrame: both store the same rows."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

import pandas as pd
import pytest

from flywheel.warehouse.store import connect
from flywheel.warehouse.writes import insert_new

ADDED_AT = datetime(2026, 12, 6, 12, 0, 0)


def occurrence(line_no: int, prompt_id: str) -> dict:
    return {
        "file_sha256": "f" * 64,
        "line_no": line_no,
        "prompt_id": prompt_id,
        "source": "test",
        "file_path": "prompts.jsonl",
        "added_at": ADDED_AT,
    }


def stored_rows(path: Path) -> list[tuple]:
    with connect(path) as con:
        return con.execute(
            "select file_sha256, line_no, prompt_id, source, file_path, added_at "
            "from prompt_occurrences order by line_no"
        ).fetchall()


def test_a_frame_stores_what_its_dicts_store_first_row_per_key_kept(tmp_path: Path) -> None:
    rows = [occurrence(1, "a"), occurrence(2, "b"), occurrence(1, "repeat of line 1")]
    with connect(tmp_path / "dicts.duckdb") as con:
        assert insert_new(con, "prompt_occurrences", rows) == 2
    with connect(tmp_path / "frame.duckdb") as con:
        assert insert_new(con, "prompt_occurrences", pd.DataFrame(rows)) == 2
        assert insert_new(con, "prompt_occurrences", pd.DataFrame(rows)) == 0
    assert stored_rows(tmp_path / "frame.duckdb") == stored_rows(tmp_path / "dicts.duckdb")
    assert [r[2] for r in stored_rows(tmp_path / "frame.duckdb")] == ["a", "b"]


def test_a_frame_row_without_its_key_is_refused_naming_the_column(tmp_path: Path) -> None:
    frame = pd.DataFrame([occurrence(1, "a"), {**occurrence(2, "b"), "file_sha256": None}])
    with connect(tmp_path / "w.duckdb") as con, pytest.raises(ValueError, match="file_sha256"):
        insert_new(con, "prompt_occurrences", frame)


def test_a_frame_missing_value_is_stored_as_null(tmp_path: Path) -> None:
    prompt = {
        "prompt_id": "p1",
        "messages": '[{"role": "user", "content": "hi"}]',
        "prompt_text": "hi",
        "source": "test",
        "category": None,
        "split": "pool",
        "status": "active",
        "n_chars": 2,
        "reference_answer": float("nan"),
        "added_at": ADDED_AT,
    }
    with connect(tmp_path / "w.duckdb") as con:
        assert insert_new(con, "prompts", pd.DataFrame([prompt])) == 1
        stored = con.execute("select category, reference_answer, n_chars from prompts").fetchall()
    assert stored == [(None, None, 2)]
