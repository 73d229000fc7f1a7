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

The extensions come from the `duckdb-extension-*` packages (pyproject.toml) and are loaded
from their files; autoinstall is off, so nothing is ever downloaded.
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib
import os
import random
import re
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Protocol, TypeVar

import duckdb

from flywheel.errors import InputError

LAKE_ALIAS = "lake"
META_SCHEMA = "flywheel_meta"  # bookkeeping, outside `main` where the analysts' tables are
GUARD_TABLE = f"{META_SCHEMA}.write_guard"
EXTENSION_PACKAGES = {
    "ducklake": "duckdb_extension_ducklake",
    "sqlite_scanner": "duckdb_extension_sqlite_scanner",
    "postgres_scanner": "duckdb_extension_postgres_scanner",
    "httpfs": "duckdb_extension_httpfs",
}
# a commit another writer got in first (DuckLake's logical conflict, DuckDB's in-process
# write-write conflict, SQLite's lock on the catalog file): rolled back, safe to run again
_CONFLICT_PATTERN = re.compile(
    r"Transaction conflict|Conflict on|database is locked|Failed to commit DuckLake transaction"
    r"|maximum retry count|could not serialize|deadlock detected",
    re.IGNORECASE,
)
T = TypeVar("T")


class LakeSettings(Protocol):
    """What the DuckLake backend needs of the config's warehouse section."""

    backend: str
    catalog: str | None
    data_path: str | None
    lock_timeout_s: float
    s3_endpoint_url: str | None
    s3_region: str
    s3_key_id_env: str
    s3_secret_env: str


class WarehouseCatalogError(InputError):
    """The DuckLake catalog or data path cannot be used as configured; the message names the
    setting and the fix."""


class WarehouseConflictError(RuntimeError):
    """A DuckLake commit kept conflicting with other writers until `warehouse.lock_timeout_s`."""


def is_lake(settings: object) -> bool:
    return getattr(settings, "backend", "duckdb") == "ducklake"


def extension_file(name: str) -> Path:
    """The `.duckdb_extension` file inside the installed `duckdb-extension-<name>` package."""
    package = EXTENSION_PACKAGES[name]
    try:
        module = importlib.import_module(package)
    except ImportError as e:
        raise WarehouseCatalogError(
            f"warehouse.backend = 'ducklake' needs the package {package.replace('_', '-')}, "
            "which is not installed. Fix: pip install -e . (pyproject.toml pins it)."
        ) from e
    files = sorted(Path(module.__file__).parent.glob("extensions/*/*.duckdb_extension"))
    if not files:
        raise WarehouseCatalogError(f"the package {package} holds no .duckdb_extension file")
    return files[-1]


def catalog_kind(catalog: str) -> str:
    """`sqlite` or `postgres`."""
    return catalog.partition(":")[0]


def sqlite_catalog_file(catalog: str) -> Path | None:
    """The catalog's SQLite file, or None for a Postgres catalog."""
    if catalog_kind(catalog) != "sqlite":
        return None
    return Path(catalog.partition(":")[2]).expanduser()


def ducklake_target(catalog: str) -> str:
    """The ATTACH target: `ducklake:sqlite:<absolute file>` or `ducklake:postgres:<conninfo>`."""
    file = sqlite_catalog_file(catalog)
    if file is not None:
        return f"ducklake:sqlite:{file.resolve()}"
    return f"ducklake:postgres:{catalog.partition(':')[2].strip()}"


def is_s3(data_path: str) -> bool:
    return data_path.startswith("s3://")


def normalised_data_path(data_path: str) -> str:
    """A local folder made absolute (DuckLake stores the data path in the catalog, so every
    process must name it the same way), with one trailing slash."""
    if is_s3(data_path):
        return data_path.rstrip("/") + "/"
    return str(Path(data_path).expanduser().resolve()) + "/"


def _literal(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def missing_s3_variables(settings: LakeSettings) -> list[str]:
    """Names of the S3 credential variables an s3:// data path needs that are not set."""
    if not settings.data_path or not is_s3(settings.data_path):
        return []
    names = (settings.s3_key_id_env, settings.s3_secret_env)
    return [name for name in names if not os.environ.get(name)]


def s3_secret_sql(settings: LakeSettings) -> str:
    """`create secret` for the S3 data path, credentials read from the environment now."""
    missing = missing_s3_variables(settings)
    if missing:
        raise WarehouseCatalogError(s3_variables_problem(settings, missing))
    options = {
        "type": "s3",
        "key_id": os.environ[settings.s3_key_id_env],
        "secret": os.environ[settings.s3_secret_env],
        "region": settings.s3_region,
    }
    if settings.s3_endpoint_url:
        scheme, _, host = settings.s3_endpoint_url.partition("://")
        options |= {"endpoint": host.rstrip("/"), "url_style": "path"}
        use_ssl = "true" if scheme == "https" else "false"
    else:
        use_ssl = "true"
    body = ", ".join(f"{k} {_literal(v)}" for k, v in options.items())
    return f"create or replace secret flywheel_s3 ({body}, use_ssl {use_ssl})"


def s3_variables_problem(settings: LakeSettings, missing: list[str]) -> str:
    return (
        f"warehouse.data_path = {settings.data_path!r} is on S3, but the environment variable"
        f"{'s' if len(missing) > 1 else ''} {', '.join(missing)} "
        f"{'are' if len(missing) > 1 else 'is'} not set (warehouse.s3_key_id_env, "
        f"warehouse.s3_secret_env name them). Fix: export {missing[0]}=<your key>, or name "
        "other variables in those settings."
    )


def needed_extensions(settings: LakeSettings) -> list[str]:
    """The extensions this lake needs (each costs a few hundred ms to load)."""
    catalog = (
        "sqlite_scanner" if catalog_kind(settings.catalog or "") == "sqlite" else "postgres_scanner"
    )
    s3 = ["httpfs"] if settings.data_path and is_s3(settings.data_path) else []
    return ["ducklake", catalog, *s3]


def load_extensions(con: duckdb.DuckDBPyConnection, names: list[str]) -> None:
    """Load extensions from their packages' files (never downloaded)."""
    for name in names:
        con.execute(f"load {_literal(str(extension_file(name)))}")


def new_database(settings: LakeSettings) -> duckdb.DuckDBPyConnection:
    """An in-memory DuckDB database with the extensions this lake needs loaded."""
    con = duckdb.connect(
        config={"autoinstall_known_extensions": False, "autoload_known_extensions": False}
    )
    load_extensions(con, needed_extensions(settings))
    return con


def attach_lake(
    con: duckdb.DuckDBPyConnection, settings: LakeSettings, alias: str, read_only: bool
) -> None:
    """Attach the configured lake to `con` as `alias`; WarehouseCatalogError names the setting."""
    assert settings.catalog and settings.data_path
    if is_s3(settings.data_path):
        con.execute(s3_secret_sql(settings))
    file = sqlite_catalog_file(settings.catalog)
    if file is not None and not read_only:
        file.resolve().parent.mkdir(parents=True, exist_ok=True)
    options = ["read_only"] if read_only else []
    options.append(f"data_path {_literal(normalised_data_path(settings.data_path))}")
    target = _literal(ducklake_target(settings.catalog))
    try:
        con.execute(f"attach {target} as {alias} ({', '.join(options)})")
    except duckdb.Error as e:
        raise WarehouseCatalogError(describe_attach_error(settings, e)) from e


def describe_attach_error(settings: LakeSettings, error: duckdb.Error) -> str:
    """One line naming the setting that is wrong and how to fix it."""
    first = next((ln.strip() for ln in str(error).splitlines() if ln.strip()), str(error))
    message = str(error)
    if "does not match existing data path" in message:
        return (
            f"warehouse.data_path = {settings.data_path!r} is not the data path the catalog "
            f"{settings.catalog!r} was made with ({first}). Fix: set warehouse.data_path to the "
            "catalog's data path, or use a new catalog."
        )
    if "password" in message.lower() or "authentication" in message.lower():
        fix = "check the user in warehouse.catalog and the password in PGPASSWORD"
    elif catalog_kind(settings.catalog or "") == "postgres":
        fix = "check host, port and dbname in warehouse.catalog, and that the server runs"
    else:
        fix = "point warehouse.catalog at a SQLite file in a writable folder"
    return f"warehouse.catalog = {settings.catalog!r} cannot be opened ({first}). Fix: {fix}."


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
    from flywheel.warehouse.store import VIEWS_SQL

    return hashlib.sha256(VIEWS_SQL.read_bytes()).hexdigest()


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


# -- checks before a round starts (flywheel/preflight.py) ---------------------------------

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
    conninfo = _literal(settings.catalog.partition(":")[2].strip())
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
        con.execute(f"copy (select 1 as probe) to {_literal(probe)} (format parquet)")
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
