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
