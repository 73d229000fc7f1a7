"""What an analyst sees: the tables and views with their grain, and read-only queries."""

from __future__ import annotations

import re
from pathlib import Path

import duckdb
import pandas as pd

from flywheel.errors import InputError
from flywheel.warehouse.store import MIGRATIONS_DIR, view_files

READ_ONLY_STATEMENTS = {duckdb.StatementType.SELECT, duckdb.StatementType.EXPLAIN}
_GRAIN_PATTERN = re.compile(
    r"--\s*(one row per[^\n]*)\n(?:--[^\n]*\n)*create (?:or replace )?(?:table|view)"
    r"(?: if not exists)?\s+(\w+)",
    re.IGNORECASE,
)


LIST_HINT = "`flywheel sql` with no query lists the tables and views"
_SUGGESTION_PREFIXES = ("Did you mean", "Candidate bindings")


class ReadOnlyQueryError(InputError):
    """A statement that would change the warehouse, or more than one statement."""


class QueryError(InputError):
    """DuckDB refused the query (syntax, unknown table or column, a bad cast); one line."""


def describe_query_error(error: duckdb.Error) -> str:
    """`<DuckDB's first line>. Fix: ...`, with DuckDB's suggestion when it made one."""
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    problem = (lines[0] if lines else type(error).__name__).rstrip(".!")
    suggestion = next((line for line in lines[1:] if line.startswith(_SUGGESTION_PREFIXES)), "")
    if isinstance(error, duckdb.ParserException):
        fix = "correct the SQL syntax of the one SELECT (quote the whole query for the shell)"
    elif isinstance(error, duckdb.CatalogException | duckdb.BinderException):
        hint = f" ({suggestion})" if suggestion else ""
        fix = f"check the table and column names{hint}; {LIST_HINT}"
    else:
        fix = f"correct the query; {LIST_HINT}"
    return f"{problem}. Fix: {fix}."


def documented_grains() -> dict[str, str]:
    """Table or view name -> its grain, read from the comment above its definition."""
    sources = [*sorted(MIGRATIONS_DIR.glob("*.sql")), *view_files()]
    grains: dict[str, str] = {}
    for source in sources:
        for grain, name in _GRAIN_PATTERN.findall(Path(source).read_text(encoding="utf-8")):
            grains[name] = grain
    return grains


def list_relations(con: duckdb.DuckDBPyConnection) -> pd.DataFrame:
    """Every table and view: its kind, row count and grain."""
    relations = con.execute(
        "select table_name, lower(table_type) from information_schema.tables "
        "where table_schema = 'main' and table_catalog = current_database() "
        "order by table_type, table_name"
    ).fetchall()
    grains = documented_grains()
    rows = []
    for name, kind in relations:
        n_rows = con.execute(f'select count(*) from "{name}"').fetchone()[0]
        rows.append(
            {
                "name": name,
                "kind": "view" if "view" in kind else "table",
                "rows": n_rows,
                "grain": grains.get(name, "schema bookkeeping" if name == "schema_version" else ""),
            }
        )
    return pd.DataFrame(rows)


def check_read_only(con: duckdb.DuckDBPyConnection, query: str) -> None:
    """Raise ReadOnlyQueryError unless `query` is exactly one SELECT (or EXPLAIN) statement."""
    try:
        statements = con.extract_statements(query)
    except duckdb.Error as e:
        raise QueryError(describe_query_error(e)) from e
    if len(statements) != 1:
        raise ReadOnlyQueryError(
            f"`flywheel sql` runs exactly one query; got {len(statements)} statements. "
            "Fix: pass a single SELECT."
        )
    kind = statements[0].type
    if kind not in READ_ONLY_STATEMENTS:
        raise ReadOnlyQueryError(
            f"`flywheel sql` is read-only and refuses {kind.name} statements. Fix: use a SELECT; "
            "the warehouse is written only by flywheel's own steps, so nothing mined is lost."
        )


def run_read_only_query(con: duckdb.DuckDBPyConnection, query: str) -> pd.DataFrame:
    """The result of one SELECT; `QueryError` (one line, with the fix) when DuckDB refuses it."""
    check_read_only(con, query)
    try:
        return con.execute(query).df()
    except duckdb.Error as e:
        raise QueryError(describe_query_error(e)) from e
