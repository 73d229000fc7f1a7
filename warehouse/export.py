"""Export mined data as TRL-ready files: `messages` for SFT; prompt/chosen/rejected for DPO and RM.

The caller names a data kind's view and TRL columns (each `DataKind` of the stage registry,
llm/stages/registry.py, holds them); the warehouse knows SQL, not stages."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import duckdb
import pandas as pd


def export_rows(
    con: duckdb.DuckDBPyConnection,
    view: str,
    columns: Sequence[str],
    round_id: int | None = None,
    include_earlier: bool = False,
) -> list[dict]:
    """The mined rows in `view` holding only TRL's `columns` (a data kind's, e.g.
    `v_dpo_pairs` with prompt/chosen/rejected): all rounds, one round, or (with
    `include_earlier`) that round and every earlier one."""
    column_list = ", ".join(f"to_json({c}) as {c}" for c in columns)
    operator = "<=" if include_earlier else "="
    where = "" if round_id is None else f"where round_id {operator} ?"
    params = [] if round_id is None else [round_id]
    records = con.execute(f"select {column_list} from {view} {where}", params).fetchall()
    return [
        {c: json.loads(value) for c, value in zip(columns, record, strict=True)}
        for record in records
    ]


def export_replay(
    con: duckdb.DuckDBPyConnection,
    view: str,
    columns: Sequence[str],
    round_id: int,
    replay_rows: int | None,
) -> tuple[list[dict], int, int]:
    """A round's rows with a replay of earlier rounds' before them: (the rows, how many are
    the round's own, how many earlier rows there are). `replay_rows` caps the earlier rows
    kept, newest round first and within a round the widest score gap first (rows without a gap
    last); None keeps them all, in the view's order (`export_rows` with `include_earlier`).
    Every mined view has `round_id`, `score_gap` and `prompt_id`."""
    this_round = export_rows(con, view, columns, round_id)
    n_earlier = con.execute(f"select count(*) from {view} where round_id < ?", [round_id])
    n_available = n_earlier.fetchone()[0]
    if replay_rows is None:
        rows = export_rows(con, view, columns, round_id, include_earlier=True)
        return rows, len(this_round), n_available
    column_list = ", ".join(f"to_json({c}) as {c}" for c in columns)
    # ties broken by the prompt and the rows' own text: the same rows on every rerun
    ties = ", ".join(["prompt_id", *(f"to_json({c})::varchar" for c in columns)])
    records = con.execute(
        f"select {column_list} from (select * from {view} where round_id < ? "
        f"order by round_id desc, score_gap desc nulls last, {ties} limit ?) "
        f"order by round_id, score_gap desc nulls last, {ties}",
        [round_id, replay_rows],
    ).fetchall()
    earlier = [
        {c: json.loads(value) for c, value in zip(columns, record, strict=True)}
        for record in records
    ]
    return earlier + this_round, len(this_round), n_available


def write_export(rows: list[dict], out_path: str | Path) -> Path:
    """Write rows as JSON Lines (.jsonl) or Parquet (.parquet)."""
    path = Path(out_path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.suffix == ".jsonl":
        with path.open("w", encoding="utf-8") as f:
            for row in rows:
                f.write(json.dumps(row, ensure_ascii=False) + "\n")
    elif path.suffix == ".parquet":
        pd.DataFrame(rows).to_parquet(path, index=False)
    else:
        raise ValueError(
            f"cannot export to {path.name}: unknown extension {path.suffix!r}. "
            "Fix: use --out FILE.jsonl or --out FILE.parquet."
        )
    return path
