"""Idempotent writes by natural key: a stored row is never written twice, error rows are replaced."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from flywheel.warehouse.store import now_utc

# (key column, condition of a stored row that a new row may replace): a failed call, game
# or battle is retried on a later run and its row replaced; a success is never replaced.
REPLACEABLE_ROWS: dict[str, tuple[str, str]] = {
    "llm_calls": ("call_id", "error is not null"),
    "judgments": ("judgment_id", "error is not null and raw_text is null"),
    "battles": ("battle_id", "outcome = 'error'"),
}
TABLE_KEYS: dict[str, str] = {
    "llm_calls": "call_id",
    "responses": "response_id",
    "judgments": "judgment_id",
    "battles": "battle_id",
}


def column_types(con: Any, table: str) -> dict[str, str]:
    """The table's columns and their SQL types, in order."""
    rows = con.execute(
        "select column_name, data_type from information_schema.columns where table_name = ? "
        "order by ordinal_position",
        [table],
    ).fetchall()
    if not rows:
        raise ValueError(f"no table {table!r} in the warehouse")
    return dict(rows)


_COLUMN_TYPES: dict[str, dict[str, str]] = {}  # of the tables in TABLE_KEYS (set by migrations)


def _keys_in(column: str, keys: Sequence[Any]) -> tuple[str, list[Any]]:
    """`column in (...)` for `keys`, and its parameters: a list of placeholders is cheapest for
    a few keys, one list parameter for many."""
    if len(keys) <= 64:
        return f"{column} in ({', '.join('?' for _ in keys)})", list(keys)
    return f"{column} = any(?::varchar[])", [list(keys)]


def write_rows(
    con: Any,
    table: str,
    rows: Sequence[dict[str, Any]],
    *,
    may_replace: Callable[[Any], bool] | None = None,
) -> int:
    """Idempotent write by natural key; stored error rows with the same key are replaced.

    Duplicates inside `rows` keep their first row. Three short statements (under a millisecond
    each on a small table, see `benchmarks/bench_calls.py`): delete the replaceable rows of
    these keys, look up which keys are stored, insert the others with one typed list parameter
    per column. `may_replace(key)`: whether a stored row may need replacing (default: any
    key); the delete is skipped when none may.
    """
    key = TABLE_KEYS[table]
    first: dict[Any, dict[str, Any]] = {}
    for row in rows:
        if row.get(key) is None:
            raise ValueError(f"cannot write to {table}: a row has no {key}")
        first.setdefault(row[key], row)
    types = _COLUMN_TYPES.get(table)
    if types is None:
        types = _COLUMN_TYPES[table] = column_types(con, table)
    present = set().union(*(r.keys() for r in first.values()))
    unknown = sorted(present - set(types))
    if unknown:
        raise ValueError(f"cannot write to {table}: unknown columns {unknown}")
    replace = [k for k in first if may_replace is None or may_replace(k)]
    if replace and table in REPLACEABLE_ROWS:
        key_column, condition = REPLACEABLE_ROWS[table]
        where, params = _keys_in(key_column, replace)
        con.execute(f"delete from {table} where {condition} and {where}", params)
    where, params = _keys_in(key, list(first))
    stored = {
        k for (k,) in con.execute(f"select {key} from {table} where {where}", params).fetchall()
    }
    new = [r for k, r in first.items() if k not in stored]
    if not new:
        return 0
    names = [c for c in types if c in present or c == "created_at"]
    created_at = now_utc()
    columns = ", ".join(f"unnest(?::{types[c]}[])" for c in names)
    con.execute(
        f"insert into {table} ({', '.join(names)}) select {columns}",
        [[r.get(c, created_at) if c == "created_at" else r.get(c) for r in new] for c in names],
    )
    return len(new)
