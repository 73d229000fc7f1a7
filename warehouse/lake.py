"""The DuckLake backend: a catalog (a SQLite file, or Postgres) plus data files (a local folder,
or an S3-compatible bucket), shared by several writers and analysts at once.

`connect_lake(settings)` hands out a cursor of this process's one in-memory DuckDB database with
the lake attached as `lake` (and made the default catalog), migrated on first use by the same
migrations as the DuckDB file. There is no file lock: DuckLake gives every transaction a snapshot
and checks conflicts at commit, so a reader never waits for a writer.

DuckLake has no unique constraints, and two transactions that both insert a key absent from
their snapshots would both commit. So every write transaction of `writes.insert_new` first bumps
the one row of `flywheel_meta.write_guard`: two concurrent writers then always conflict, one
commit fails, and `retry_on_conflict` runs it again on a fresh snapshot, where the re-check
(`insert ... where not exists`) skips the rows the other one stored.

The attach itself (catalog, data path, extensions) is in `lake_attach.py`; the checks before a
round starts are in `lake_checks.py`.
"""

from __future__ import annotations

import hashlib
import random
import re
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TypeVar

import duckdb

from flywheel.warehouse.lake_attach import (
    LakeSettings,
    WarehouseCatalogError,
    attach_lake,
    new_database,
    sqlite_catalog_file,
)

LAKE_ALIAS = "lake"
META_SCHEMA = "flywheel_meta"  # bookkeeping, outside `main` where the analysts' tables are
GUARD_TABLE = f"{META_SCHEMA}.write_guard"
# a commit another writer got in first (DuckLake's logical conflict, DuckDB's in-process
# write-write conflict, SQLite's lock on the catalog file): rolled back, safe to run again
_CONFLICT_PATTERN = re.compile(
    r"Transaction conflict|Conflict on|database is locked|Failed to commit DuckLake transaction"
    r"|maximum retry count|could not serialize|deadlock detected",
    re.IGNORECASE,
)
T = TypeVar("T")


class WarehouseConflictError(RuntimeError):
    """A DuckLake commit kept conflicting with other writers until `warehouse.lock_timeout_s`."""


def is_conflict(error: BaseException) -> bool:
    """Whether `error` is a commit that lost to another writer (safe to run again)."""
    return isinstance(error, duckdb.Error) and bool(_CONFLICT_PATTERN.search(str(error)))


# One write transaction at a time in this process: the write guard makes concurrent writers
# conflict anyway, and two open write transactions of one process on a SQLite catalog wait
# for each other's lock on the file.
WRITE_LOCK = threading.RLock()


def retry_on_conflict(write: Callable[[], T], timeout_s: float) -> T:
    """Run `write` (one whole transaction) until it commits without a conflict, with jittered
    backoff; WarehouseConflictError after `timeout_s`."""
    deadline = time.monotonic() + timeout_s
    attempt = 0
    while True:
        try:
            with WRITE_LOCK:
                return write()
        except duckdb.Error as e:
            if not is_conflict(e):
                raise
            if time.monotonic() >= deadline:
                raise WarehouseConflictError(
                    f"a DuckLake commit conflicted with other writers for {timeout_s:.0f} s "
                    f"({str(e).splitlines()[0]}). Fix: rerun to resume, or raise "
                    "warehouse.lock_timeout_s."
                ) from e
            delay = min(0.01 * 2**attempt, 0.5) * random.uniform(0.5, 1.0)
            time.sleep(min(delay, max(0.0, deadline - time.monotonic())))
            attempt += 1


# -- this process's lake databases -------------------------------------------------------

_databases: dict[tuple[object, ...], duckdb.DuckDBPyConnection] = {}
_databases_lock = threading.Lock()
_lake_cursors: set[int] = set()  # id() of the cursors connect_lake has handed out


def _settings_key(settings: LakeSettings, read_only: bool) -> tuple[object, ...]:
    return (
        settings.catalog,
        settings.data_path,
        settings.s3_endpoint_url,
        settings.s3_region,
        settings.s3_key_id_env,
        settings.s3_secret_env,
        read_only,
    )


def _database(settings: LakeSettings, read_only: bool) -> duckdb.DuckDBPyConnection:
    key = _settings_key(settings, read_only)
    with _databases_lock:
        con = _databases.get(key)
        if con is None:
            con = new_database(settings)
            try:
                attach_lake(con, settings, LAKE_ALIAS, read_only)
                if not read_only:
                    cursor = con.cursor()
                    cursor.execute(f"use {LAKE_ALIAS}")
                    retry_on_conflict(lambda: _prepare(cursor), settings.lock_timeout_s)
                    cursor.close()
            except BaseException:
                con.close()
                raise
            _databases[key] = con
        return con


def _views_sha256() -> str:
    from flywheel.warehouse.store import views_text

    return hashlib.sha256(views_text().encode("utf-8")).hexdigest()


def is_prepared(con: duckdb.DuckDBPyConnection) -> bool:
    """Whether the lake is at this flywheel's schema version, with these views and the guard:
    then opening it writes nothing (a new process does not recreate the views, which would
    be a commit competing with the writers)."""
    from flywheel.warehouse.store import LATEST_SCHEMA_VERSION, schema_version

    if schema_version(con) != LATEST_SCHEMA_VERSION:
        return False
    found = con.execute(
        "select count(*) from information_schema.tables where table_catalog = current_database() "
        "and table_schema = ? and table_name in ('write_guard', 'views_version')",
        [META_SCHEMA],
    ).fetchone()[0]
    if found < 2:
        return False
    stored = con.execute(f"select max(sha256) from {META_SCHEMA}.views_version").fetchone()[0]
    return stored == _views_sha256()


def _prepare(con: duckdb.DuckDBPyConnection) -> None:
    """Migrate the lake, (re)create its views and the write guard, unless it is prepared
    already. A conflict with another process doing the same is retried by the caller."""
    from flywheel.warehouse.store import migrate, transaction

    if is_prepared(con):
        return
    migrate(con, "lake")
    with transaction(con):
        con.execute(f"create schema if not exists {META_SCHEMA}")
        con.execute(f"create table if not exists {GUARD_TABLE} (n_writes bigint not null)")
        con.execute(
            f"insert into {GUARD_TABLE} select 0 where not exists (select 1 from {GUARD_TABLE})"
        )
        con.execute(f"create table if not exists {META_SCHEMA}.views_version (sha256 varchar)")
        con.execute(f"delete from {META_SCHEMA}.views_version")
        con.execute(f"insert into {META_SCHEMA}.views_version values (?)", [_views_sha256()])


def _readable(settings: LakeSettings) -> bool:
    """Whether a read-only attach finds the lake prepared (a lake that does not exist yet, or
    is at an older version, is created or migrated by a read-write attach first)."""
    key = _settings_key(settings, read_only=True)
    if key in _databases:
        return True
    file = sqlite_catalog_file(settings.catalog or "")
    if file is not None and not file.exists():
        return False
    try:
        con = _database(settings, read_only=True)
    except WarehouseCatalogError:
        return False
    cursor = con.cursor()
    try:
        cursor.execute(f"use {LAKE_ALIAS}")
        from flywheel.warehouse.store import LATEST_SCHEMA_VERSION, schema_version

        return schema_version(cursor) >= LATEST_SCHEMA_VERSION
    finally:
        cursor.close()


def close_lakes() -> None:
    """Close this process's lake databases (tests; the next connect_lake attaches again)."""
    with _databases_lock:
        for con in _databases.values():
            con.close()
        _databases.clear()


@contextmanager
def connect_lake(
    settings: LakeSettings, *, read_only: bool = False
) -> Iterator[duckdb.DuckDBPyConnection]:
    """A cursor on the lake (its default catalog), for one burst; the lake is attached and
    migrated on this process's first use. Read-only cursors come from a read-only attach."""
    if read_only and not _readable(settings):
        _database(settings, read_only=False)  # creates or migrates the lake
    cursor = _database(settings, read_only).cursor()
    _lake_cursors.add(id(cursor))
    try:
        cursor.execute(f"use {LAKE_ALIAS}")
        if read_only:
            from flywheel.warehouse.store import check_version

            check_version(cursor, settings.catalog or "")
        yield cursor
    finally:
        _lake_cursors.discard(id(cursor))
        cursor.close()


def is_lake_connection(con: object) -> bool:
    return id(con) in _lake_cursors


def bump_write_guard(con: duckdb.DuckDBPyConnection) -> None:
    """Mark this transaction as a writer that conflicts with every other concurrent writer."""
    con.execute(f"update {GUARD_TABLE} set n_writes = n_writes + 1")
