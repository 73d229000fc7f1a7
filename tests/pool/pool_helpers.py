"""Helpers the prompt-pool tests share: the literal files, a line's stored prompt, the counts."""

from __future__ import annotations

import json
from pathlib import Path

from flywheel.config import Config
from flywheel.pool.ingest import add_prompt_records
from flywheel.warehouse.store import connect

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


def fill_pool(config: Config, n_per_category: dict[str, int]) -> None:
    records = [
        {"prompt": story(f"{category}{i}", topic=category), "category": category}
        for category, n in n_per_category.items()
        for i in range(n)
    ]
    report = add_prompt_records(config, records, source="synthetic")
    assert report.n_added == len(records)
