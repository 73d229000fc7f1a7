"""The one idempotent write: rows go in by natural key, a stored row is never written twice, and
a stored error row (a failed call, game or battle) is replaced by its retry.

`insert_new(con, table, rows)` takes a list of dicts or a DataFrame; the natural keys are the
tables' contracts (`contracts.NATURAL_KEYS`). Duplicates inside `rows` keep their first row.
Three short statements (under a millisecond each on a small table, see
`benchmarks/bench_calls.py`): delete the replaceable stored rows of these keys, then insert the
rows whose key is not stored, `insert ... select ... where not exists` over one typed list
parameter per column, which also runs on DuckLake (no primary keys).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import pandas as pd

from flywheel.warehouse.contracts import NATURAL_KEYS
from flywheel.warehouse.lake import bump_write_guard, is_lake_connection, retry_on_conflict
from flywheel.warehouse.store import in_transaction, now_utc, transaction

# (key column, condition of a stored row that a new row may replace): a failed call, game
# or battle is retried on a later run and its row replaced; a success is never replaced.
REPLACEABLE_ROWS: dict[str, tuple[str, str]] = {
    "llm_calls": ("call_id", "error is not null"),
    "judgments": ("judgment_id", "error is not null and raw_text is null"),
    "battles": ("battle_id", "outcome = 'error'"),
}
Rows = Sequence[dict[str, Any]] | pd.DataFrame
LAKE_WRITE_TIMEOUT_S = 120.0  # retrying a lone DuckLake write that conflicts, before failing
_COLUMN_TYPES: dict[str, dict[str, str]] = {}  # per table (the schema is set by migrations)


def column_types(con: Any, table: str) -> dict[str, str]:
    """The table's columns and their SQL types, in order."""
    rows = con.execute(
        "select column_name, data_type from information_schema.columns where table_name = ? "
        "and table_catalog = current_database() "
        "order by ordinal_position",
        [table],
    ).fetchall()
    if not rows:
        raise ValueError(f"no table {table!r} in the warehouse")
    return dict(rows)


def row_key(table: str, row: dict[str, Any], key: Sequence[str] | None = None) -> Any:
    """The natural key of a row (`key`, default the table's): its value, or a tuple of values
    for a composite key."""
    key = key or NATURAL_KEYS[table]
    return row.get(key[0]) if len(key) == 1 else tuple(row.get(c) for c in key)


def _plain_values(column: pd.Series) -> list[Any]:
    """A frame column as Python values; missing ones (NaN, NaT, NA) become None."""
    return column.astype(object).where(column.notna(), None).tolist()


def _first_of_frame(
    table: str, key: Sequence[str], frame: pd.DataFrame
) -> tuple[list[Any], dict[str, list[Any]]]:
    """The first row of each key in `frame`: (the keys in order, each column's values)."""
    missing = [c for c in key if c not in frame.columns or bool(frame[c].isna().any())]
    if missing:
        raise ValueError(f"cannot write to {table}: a row has no {', '.join(missing)}")
    first = frame.drop_duplicates(subset=list(key), keep="first")
    columns = {str(c): _plain_values(first[c]) for c in first.columns}
    if len(key) == 1:
        return list(columns[key[0]]), columns
    return list(zip(*(columns[c] for c in key), strict=True)), columns


def _first_of_dicts(
    table: str, key: Sequence[str], rows: Sequence[dict[str, Any]]
) -> tuple[list[Any], dict[str, list[Any]]]:
    """The first row of each key in `rows`: (the keys in order, each column's values; a row
    without `created_at` where others have it gets the current time)."""
    first: dict[Any, dict[str, Any]] = {}
    for row in rows:
        missing = [c for c in key if row.get(c) is None]
        if missing:
            raise ValueError(f"cannot write to {table}: a row has no {', '.join(missing)}")
        first.setdefault(row_key(table, row, key), row)
    present = set().union(*(r.keys() for r in first.values()))
    created_at = now_utc()
    columns = {
        c: [r.get(c, created_at) if c == "created_at" else r.get(c) for r in first.values()]
        for c in present
    }
    return list(first), columns


def _keys_in(column: str, keys: Sequence[Any]) -> tuple[str, list[Any]]:
    """`column in (...)` for `keys`, and its parameters: a list of placeholders is cheapest for
    a few keys, one list parameter for many."""
    if len(keys) <= 64:
        return f"{column} in ({', '.join('?' for _ in keys)})", list(keys)
    return f"{column} = any(?::varchar[])", [list(keys)]


def _delete_replaceable(
    con: Any, table: str, keys: list[Any], may_replace: Callable[[Any], bool] | None
) -> None:
    """Delete the stored error rows these keys replace (`may_replace(key)`: whether a stored
    row may need replacing; default any key). Nothing to do for other tables."""
    if table not in REPLACEABLE_ROWS:
        return
    replace = [k for k in keys if may_replace is None or may_replace(k)]
    if replace:
        key_column, condition = REPLACEABLE_ROWS[table]
        where, params = _keys_in(key_column, replace)
        con.execute(f"delete from {table} where {condition} and {where}", params)


def insert_new(
    con: Any,
    table: str,
    rows: Rows,
    key: Sequence[str] | None = None,
    *,
    may_replace: Callable[[Any], bool] | None = None,
) -> int:
    """Insert the rows whose natural key is not stored yet (replacing stored error rows of the
    same key, see REPLACEABLE_ROWS); return how many were added. `key` defaults to the table's
    contract. `created_at` is filled with the current time when the rows lack it.

    On a DuckLake (no unique constraints) the write bumps the write guard, so that a concurrent
    writer of the same keys conflicts at commit instead of adding them twice; outside a
    `transaction` block the write is its own transaction, run again on a conflict (its re-check
    then skips what the other writer stored). Inside one, the block's owner retries the block.
    """
    if is_lake_connection(con):
        if not in_transaction(con):

            def write_alone() -> int:
                with transaction(con):
                    return insert_new(con, table, rows, key, may_replace=may_replace)

            return retry_on_conflict(write_alone, timeout_s=LAKE_WRITE_TIMEOUT_S)
        bump_write_guard(con)
    key = tuple(key or NATURAL_KEYS[table])
    keys, values_of = (
        _first_of_frame(table, key, rows)
        if isinstance(rows, pd.DataFrame)
        else _first_of_dicts(table, key, rows)
    )
    if not keys:
        return 0
    types = _COLUMN_TYPES.get(table)
    if types is None:
        types = _COLUMN_TYPES[table] = column_types(con, table)
    unknown = sorted(set(values_of) - set(types))
    if unknown:
        raise ValueError(f"cannot write to {table}: unknown columns {unknown}")
    _delete_replaceable(con, table, keys, may_replace)
    names = [c for c in types if c in values_of or c == "created_at"]
    if "created_at" in names and "created_at" not in values_of:
        values_of["created_at"] = [now_utc()] * len(keys)
    values = [values_of[c] for c in names]
    columns = ", ".join(f"unnest(?::{types[c]}[]) as {c}" for c in names)
    stored = " and ".join(f"t.{c} is not distinct from b.{c}" for c in key)
    result = con.execute(
        f"insert into {table} ({', '.join(names)}) select {', '.join(names)} "
        f"from (select {columns}) as b where not exists (select 1 from {table} as t where {stored})",
        values,
    ).fetchone()
    return int(result[0]) if result else 0
