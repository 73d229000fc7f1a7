"""Checks of a DuckLake before a round starts (flywheel/preflight.py): is the catalog there and
reachable, is its schema one this flywheel knows, can the s3:// data path be written. Nothing
here writes to the catalog."""

from __future__ import annotations

import contextlib

import duckdb

from flywheel.warehouse.lake_attach import (
    LakeSettings,
    WarehouseCatalogError,
    attach_lake,
    describe_attach_error,
    is_s3,
    missing_s3_variables,
    new_database,
    normalised_data_path,
    s3_secret_sql,
    s3_variables_problem,
    sql_literal,
    sqlite_catalog_file,
)

SQLITE_HEADER = b"SQLite format 3\x00"


def catalog_exists(con: duckdb.DuckDBPyConnection, settings: LakeSettings) -> bool:
    """Whether the catalog already holds a DuckLake (reachability is checked on the way, for
    Postgres with a read-only plain attach that writes nothing)."""
    assert settings.catalog
    file = sqlite_catalog_file(settings.catalog)
    if file is not None:
        if not file.exists():
            return False
        with file.open("rb") as f:
            if f.read(len(SQLITE_HEADER)) != SQLITE_HEADER:
                raise WarehouseCatalogError(
                    f"warehouse.catalog = {settings.catalog!r}: {str(file)!r} is not a SQLite "
                    "file. Fix: point warehouse.catalog at a DuckLake catalog file, or at a new "
                    "path for an empty one (the file was left untouched)."
                )
        return True
    conninfo = sql_literal(settings.catalog.partition(":")[2].strip())
    try:
        con.execute(f"attach {conninfo} as flywheel_probe_pg (type postgres, read_only)")
        found = con.execute(
            "select * from postgres_query('flywheel_probe_pg', 'select count(*) from "
            "information_schema.tables where table_name = ''ducklake_snapshot''')"
        ).fetchone()[0]
    except duckdb.Error as e:
        raise WarehouseCatalogError(describe_attach_error(settings, e)) from e
    finally:
        with contextlib.suppress(duckdb.Error):
            con.execute("detach flywheel_probe_pg")
    return bool(found)


def newer_schema_problem(con: duckdb.DuckDBPyConnection, settings: LakeSettings) -> str | None:
    """Attach the existing lake read-only: a newer schema, or a data path the catalog was not
    made with, is a problem."""
    from flywheel.warehouse.store import LATEST_SCHEMA_VERSION, schema_version

    attach_lake(con, settings, "flywheel_probe_lake", read_only=True)
    try:
        con.execute("use flywheel_probe_lake")
        version = schema_version(con)
    finally:
        con.execute("use memory")
        con.execute("detach flywheel_probe_lake")
    if version <= LATEST_SCHEMA_VERSION:
        return None
    return (
        f"warehouse.catalog = {settings.catalog!r} has schema version {version}, but this "
        f"flywheel only knows versions up to {LATEST_SCHEMA_VERSION}. Fix: upgrade flywheel "
        "(pip install -U -e .) or point warehouse.catalog at another catalog; it was left "
        "untouched."
    )


def s3_write_problem(con: duckdb.DuckDBPyConnection, settings: LakeSettings) -> str | None:
    """Write one small probe object under the s3:// data path (overwritten each time)."""
    probe = normalised_data_path(settings.data_path or "") + "flywheel-write-probe.parquet"
    try:
        con.execute(s3_secret_sql(settings))
        con.execute(f"copy (select 1 as probe) to {sql_literal(probe)} (format parquet)")
    except duckdb.Error as e:
        first = next((ln.strip() for ln in str(e).splitlines() if ln.strip()), str(e))
        return (
            f"warehouse.data_path = {settings.data_path!r} cannot be written ({first}). Fix: "
            "check the bucket name, warehouse.s3_endpoint_url and the credentials in "
            f"{settings.s3_key_id_env} / {settings.s3_secret_env}."
        )
    return None


def lake_problems(settings: LakeSettings) -> list[str]:
    """What keeps this lake from being used, one line each; writes nothing to the catalog."""
    missing = missing_s3_variables(settings)
    if missing:
        return [s3_variables_problem(settings, missing)]
    con = new_database(settings)
    try:
        problems: list[str] = []
        if settings.data_path and is_s3(settings.data_path):
            problem = s3_write_problem(con, settings)
            if problem:
                problems.append(problem)
        try:
            if catalog_exists(con, settings):
                problem = newer_schema_problem(con, settings)
                if problem:
                    problems.append(problem)
        except WarehouseCatalogError as e:
            problems.append(str(e))
        return problems
    finally:
        con.close()
