"""`flywheel warehouse copy --to <config>`: a whole warehouse copied into another backend (a
DuckDB file into a DuckLake, or back), in one transaction, verified before it commits.

The target must be empty (it is created and migrated if new); a non-empty target is refused,
never merged, so a copy can be checked row for row: every table has as many rows as in the
source and the same natural keys (`contracts.NATURAL_KEYS`, compared exactly with EXCEPT ALL
both ways). Any difference rolls the copy back. The source is only read.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any  # the config's WarehouseConfig (warehouse/ imports no config)

import duckdb

from flywheel.errors import InputError
from flywheel.warehouse.contracts import NATURAL_KEYS
from flywheel.warehouse.lake import bump_write_guard, is_lake_connection
from flywheel.warehouse.lake_attach import attach_lake, is_lake, load_extensions, needed_extensions
from flywheel.warehouse.store import connect_warehouse, transaction

SOURCE_ALIAS = "flywheel_source"


class WarehouseCopyError(InputError):
    """The copy was refused (same warehouse, missing source, non-empty target)."""


class CopyVerificationError(RuntimeError):
    """The copied rows differ from the source's; the copy was rolled back."""


@dataclass
class CopyReport:
    source: str
    target: str
    rows: dict[str, int] = field(default_factory=dict)  # table -> rows copied (and verified)

    def summary(self) -> str:
        total = sum(self.rows.values())
        return (
            f"copied {total} rows in {len(self.rows)} tables from {self.source} to "
            f"{self.target}; row counts and natural keys verified"
        )


def stored_tables(con: duckdb.DuckDBPyConnection, catalog: str) -> list[str]:
    """The data tables of a warehouse attached as `catalog` (schema bookkeeping left out)."""
    rows = con.execute(
        "select table_name from information_schema.tables where table_catalog = ? "
        "and table_schema = 'main' and table_type = 'BASE TABLE' and table_name <> "
        "'schema_version' order by table_name",
        [catalog],
    ).fetchall()
    return [name for (name,) in rows]


def _columns(con: duckdb.DuckDBPyConnection, catalog: str, table: str) -> list[str]:
    rows = con.execute(
        "select column_name from information_schema.columns where table_catalog = ? "
        "and table_schema = 'main' and table_name = ? order by ordinal_position",
        [catalog, table],
    ).fetchall()
    return [name for (name,) in rows]


def _attach_source(con: duckdb.DuckDBPyConnection, source: Any) -> None:
    if is_lake(source):
        if not is_lake_connection(con):  # a DuckDB file's database: load the extensions
            load_extensions(con, needed_extensions(source))
        attach_lake(con, source, SOURCE_ALIAS, read_only=True)
    else:
        path = str(Path(source.path).resolve()).replace("'", "''")
        con.execute(f"attach '{path}' as {SOURCE_ALIAS} (read_only)")


def _key_differences(con: duckdb.DuckDBPyConnection, target: str, table: str) -> int:
    """Natural keys in one warehouse and not the other (counted with multiplicity)."""
    key = ", ".join(NATURAL_KEYS[table])
    mine = f"select {key} from {target}.main.{table}"
    theirs = f"select {key} from {SOURCE_ALIAS}.main.{table}"
    query = (
        f"select (select count(*) from ({mine} except all {theirs})) + "
        f"(select count(*) from ({theirs} except all {mine}))"
    )
    return con.execute(query).fetchone()[0]


def _verify(con: duckdb.DuckDBPyConnection, target: str, tables: list[str]) -> dict[str, int]:
    rows: dict[str, int] = {}
    problems: list[str] = []
    for table in tables:
        n_source = con.execute(f"select count(*) from {SOURCE_ALIAS}.main.{table}").fetchone()[0]
        n_target = con.execute(f"select count(*) from {target}.main.{table}").fetchone()[0]
        if n_source != n_target:
            problems.append(f"{table}: {n_target} rows copied of {n_source}")
        elif table in NATURAL_KEYS and _key_differences(con, target, table):
            problems.append(f"{table}: the natural keys differ")
        rows[table] = n_target
    if problems:
        raise CopyVerificationError(
            "the copy does not match its source and was rolled back: " + "; ".join(problems)
        )
    return rows


def copy_warehouse(source: Any, target: Any) -> CopyReport:
    """Copy every table of `source` into the empty `target` and verify it (see module doc)."""
    if source.location == target.location:
        raise WarehouseCopyError(
            f"--to names the same warehouse as --config ({source.location}). Fix: pass the "
            "config of another warehouse."
        )
    if not is_lake(source) and not Path(source.path).is_file():
        raise WarehouseCopyError(
            f"the source warehouse {source.path!r} does not exist. Fix: pass --config with the "
            "config of the warehouse to copy."
        )
    with connect_warehouse(source):
        pass  # migrated to this flywheel's schema, like the target
    report = CopyReport(source.location, target.location)
    with connect_warehouse(target) as con:
        target_catalog = con.execute("select current_database()").fetchone()[0]
        stored = {
            t: con.execute(f"select count(*) from {t}").fetchone()[0]
            for t in stored_tables(con, target_catalog)
        }
        if any(stored.values()):
            n_rows = sum(stored.values())
            raise WarehouseCopyError(
                f"the target warehouse {target.location} already holds {n_rows} rows; copy "
                "refuses a non-empty target (it never merges). Fix: point --to at a config "
                "whose warehouse is new or empty."
            )
        _attach_source(con, source)
        try:
            tables = stored_tables(con, SOURCE_ALIAS)
            with transaction(con):
                if is_lake_connection(con):
                    bump_write_guard(con)
                for table in tables:
                    names = ", ".join(_columns(con, SOURCE_ALIAS, table))
                    con.execute(
                        f"insert into {target_catalog}.main.{table} ({names}) "
                        f"select {names} from {SOURCE_ALIAS}.main.{table}"
                    )
                report.rows = _verify(con, target_catalog, tables)
        finally:
            con.execute(f"detach {SOURCE_ALIAS}")
    return report
