"""The DuckDB warehouse file: the one way to open it (`connect_warehouse`), versioned migrations.

Connections are opened for short bursts (`with connect_warehouse(settings) as con: ...`) and
never held across a long step: while one process has the file open read-write no other process
can open it at all, so an analyst's query waits only for the write in progress. Writes go
through `writes.insert_new`; the row writer (`writer.RowWriter`) batches them for the steps.
"""

from __future__ import annotations

import random
import re
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager, nullcontext, suppress
from datetime import UTC, datetime
from pathlib import Path
from typing import Protocol

import duckdb
import pandas as pd

from flywheel.errors import InputError
from flywheel.warehouse.integrity import check_whole, damaged_from, is_damage_error

PACKAGE_DIR = Path(__file__).parent
MIGRATIONS_DIR = PACKAGE_DIR / "migrations"
QUERIES_DIR = PACKAGE_DIR / "queries"
VIEWS_SQL = PACKAGE_DIR / "views.sql"
VIEWS_DIR = PACKAGE_DIR / "views"  # one file per room's views, read after views.sql
_LOCK_PATTERN = re.compile(r"Could not set lock on file|Conflicting lock is held", re.IGNORECASE)
_PID_PATTERN = re.compile(r"PID (\d+)")
_NOT_DUCKDB_PATTERN = re.compile(r"not a valid DuckDB database file", re.IGNORECASE)


class WarehouseLockedError(RuntimeError):
    """Another process held the warehouse file for longer than the configured timeout."""


class WarehouseVersionError(RuntimeError):
    """The warehouse was written by a newer flywheel than this one."""


class WarehousePathError(InputError):
    """`warehouse.path` cannot hold the warehouse: a folder, a path under a regular file, a
    folder that cannot be created, or a file that is not a DuckDB database."""


def warehouse_path_problem(path: str | Path) -> str | None:
    """Why `path` cannot be the warehouse file, judged from the filesystem; None if it can."""
    target = Path(path)
    if target.is_dir():
        return (
            f"warehouse.path = {str(target)!r} is a folder. Fix: name a file in it, such as "
            f"{str(target / 'flywheel.duckdb')!r}."
        )
    for folder in target.parents:
        if folder.is_dir():
            return None
        if folder.exists():
            return (
                f"warehouse.path = {str(target)!r} lies under {str(folder)!r}, which is a file, "
                "not a folder. Fix: point warehouse.path at a path whose parents are folders, "
                "or move that file away."
            )
    return None


def check_warehouse_path(path: str | Path) -> None:
    """Raise WarehousePathError naming `warehouse.path` and the fix when `path` cannot be it."""
    problem = warehouse_path_problem(path)
    if problem is not None:
        raise WarehousePathError(problem)


def _create_parent(path: str) -> None:
    folder = Path(path).parent
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise WarehousePathError(
            f"warehouse.path = {path!r}: its folder {str(folder)!r} cannot be created "
            f"({e.strerror or e}). Fix: point warehouse.path at a writable location."
        ) from e


def migration_files() -> list[tuple[int, Path]]:
    """(version, path) of every migration, in order: `001_initial.sql` is version 1."""
    files = sorted(MIGRATIONS_DIR.glob("[0-9][0-9][0-9]_*.sql"))
    return [(int(path.name[:3]), path) for path in files]


LATEST_SCHEMA_VERSION = migration_files()[-1][0]


def view_files() -> list[Path]:
    """The files that define the views, in the order they run: views/*.sql, then views.sql
    (which may read theirs)."""
    return [*sorted(VIEWS_DIR.glob("*.sql")), VIEWS_SQL]


def views_text() -> str:
    """Every view definition, as one script."""
    return "\n".join(path.read_text(encoding="utf-8") for path in view_files())


def read_query(name: str) -> str:
    """The text of a named query, `warehouse/queries/<name>.sql`."""
    return (QUERIES_DIR / f"{name}.sql").read_text(encoding="utf-8")


def now_utc() -> datetime:
    return datetime.now(UTC).replace(tzinfo=None)


def schema_version(con: duckdb.DuckDBPyConnection) -> int:
    """The warehouse's schema version; 0 for an empty file."""
    exists = con.execute(
        "select count(*) from information_schema.tables where table_name = 'schema_version' "
        "and table_catalog = current_database()"
    ).fetchone()[0]
    if not exists:
        return 0
    return con.execute("select coalesce(max(version), 0) from schema_version").fetchone()[0]


def check_version(con: duckdb.DuckDBPyConnection, path: str) -> int:
    version = schema_version(con)
    if version > LATEST_SCHEMA_VERSION:
        raise WarehouseVersionError(
            f"warehouse {path} has schema version {version}, but this flywheel only knows "
            f"versions up to {LATEST_SCHEMA_VERSION}. Fix: upgrade flywheel (pip install -U -e .) "
            "or point warehouse.path at another file; the file was left untouched."
        )
    return version


def migrate(con: duckdb.DuckDBPyConnection, path: str = "", up_to: int | None = None) -> int:
    """Apply every migration newer than the file's version (up to `up_to`); return the version."""
    current = check_version(con, path)
    target = LATEST_SCHEMA_VERSION if up_to is None else up_to
    con.execute("create table if not exists schema_version (version integer, applied_at timestamp)")
    for version, migration in migration_files():
        if current < version <= target:
            with transaction(con):
                con.execute(migration.read_text(encoding="utf-8"))
                con.execute("insert into schema_version values (?, ?)", [version, now_utc()])
            current = version
    if current == LATEST_SCHEMA_VERSION:
        with transaction(con):  # one commit (on a DuckLake, one snapshot) for every view
            con.execute(views_text())
    return current


def describe_lock_holder(message: str) -> str:
    """Which kind of process holds the file, read from DuckDB's lock error and /proc."""
    match = _PID_PATTERN.search(message)
    if not match:
        return "another process"
    pid = match.group(1)
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
        argv = [part for part in raw.decode(errors="replace").split("\0") if part]
    except OSError:
        return f"process {pid} (no longer visible)"
    command = " ".join(Path(a).name if i == 0 else a for i, a in enumerate(argv))[:160]
    if any(Path(a).name == "flywheel" for a in argv[:2]):
        sub = next(
            (a for a in argv[1:] if not a.startswith("-") and Path(a).name != "flywheel"), ""
        )
        kind = f"a `flywheel {sub}` run".replace("  ", " ")
    elif any("pytest" in a for a in argv):
        kind = "a test run (pytest)"
    elif any("prefect" in a for a in argv):
        kind = "a Prefect process"
    elif any("duckdb" in Path(a).name for a in argv[:1]):
        kind = "a DuckDB shell"
    else:
        kind = "another program"
    return f"{kind} (PID {pid}: {command})"


def waiting_flag(path: str | Path) -> Path:
    """A file that exists while some process waits for the warehouse: a writer holding the
    file through a long step (warehouse/writer.RowWriter) lets go when it sees it."""
    return Path(f"{path}.wait")


def _raise_waiting_flag(path: str) -> None:
    """Ask the writer to let go. Where the flag cannot be written (a read-only filesystem or
    folder) the waiter still retries until its timeout; the writer just is not asked."""
    try:
        waiting_flag(path).touch()
    except OSError:
        pass


def _clear_waiting_flag(path: str) -> None:
    """Remove the flag; where it cannot be removed (read-only location) it was never raised,
    so a read-only open of such a warehouse is not refused over it."""
    try:
        waiting_flag(path).unlink(missing_ok=True)
    except OSError:
        pass


def _open_with_retry(path: str, read_only: bool, timeout_s: float) -> duckdb.DuckDBPyConnection:
    try:
        return _open_waiting(path, read_only, timeout_s)
    finally:
        _clear_waiting_flag(path)


def _open_waiting(path: str, read_only: bool, timeout_s: float) -> duckdb.DuckDBPyConnection:
    deadline = time.monotonic() + timeout_s
    attempt = 0
    while True:
        try:
            return duckdb.connect(path, read_only=read_only)
        except duckdb.IOException as e:
            if _NOT_DUCKDB_PATTERN.search(str(e)):
                raise WarehousePathError(
                    f"warehouse.path = {path!r} is a file but not a DuckDB database. Fix: point "
                    "warehouse.path at a flywheel warehouse or at a new path for an empty one, "
                    "or bring back a backup with `flywheel warehouse restore DIR` (the file was "
                    "left untouched)."
                ) from e
            if is_damage_error(e):
                raise damaged_from(e, path) from e
            if not _LOCK_PATTERN.search(str(e)):
                raise
            _raise_waiting_flag(path)
            if time.monotonic() >= deadline:
                holder = describe_lock_holder(str(e))
                raise WarehouseLockedError(
                    f"warehouse {path} is held by {holder}; waited {timeout_s:.0f} s. "
                    "Fix: wait for that process to finish (a flywheel run opens the file only "
                    "for short writes, so a long hold means it is stuck or an interactive "
                    "session kept it open), stop it, or raise warehouse.lock_timeout_s."
                ) from e
            delay = min(0.05 * 2**attempt, 2.0) * random.uniform(0.5, 1.0)
            time.sleep(min(delay, max(0.0, deadline - time.monotonic())))
            attempt += 1


_migrated_files: set[tuple[str, int]] = set()  # (path, inode) migrated by this process
_whole_files: set[tuple[str, int]] = set()  # (path, inode) found whole by this process


def _file_identity(path: str) -> tuple[str, int]:
    return (str(Path(path).resolve()), Path(path).stat().st_ino)


@contextmanager
def connect(
    path: str | Path,
    *,
    read_only: bool = False,
    timeout_s: float = 120.0,
    checkpoint_on_close: bool = True,
) -> Iterator[duckdb.DuckDBPyConnection]:
    """Open the warehouse for one short burst; create and migrate it on first use.

    When another process holds the file, wait with backoff and retry until `timeout_s`,
    then raise `WarehouseLockedError` naming the holder. A path that cannot be the warehouse
    (a folder, under a regular file, not a DuckDB file) raises `WarehousePathError`; a file
    that cannot be read whole (cut short, a block zeroed or overwritten; checked on the first
    open in this process, warehouse/integrity.py) raises `WarehouseDamagedError`, before
    anything is migrated or written. `checkpoint_on_close=False` skips
    DuckDB's checkpoint when the file is closed (committed rows stay in the write-ahead log,
    durable, and are replayed by the next open); it applies to the database, i.e. to every
    connection of this process to the file until the last one closes.
    """
    db_path = str(path)
    check_warehouse_path(db_path)
    if read_only and not Path(db_path).exists():
        with connect(db_path, timeout_s=timeout_s):
            pass  # create and migrate, then reopen read-only
    if not read_only:
        _create_parent(db_path)
    existed = Path(db_path).exists()
    con = _open_with_retry(db_path, read_only, timeout_s)
    try:
        file_id = _file_identity(db_path)
        if existed and file_id not in _whole_files:
            check_whole(con, db_path)  # once per file and process: every block in use read
        _whole_files.add(file_id)
        if read_only or file_id in _migrated_files:
            check_version(con, db_path)
        else:
            migrate(con, db_path)
            _migrated_files.add(file_id)
        if not checkpoint_on_close and not read_only:
            con.execute("pragma disable_checkpoint_on_shutdown")
        yield con
    finally:
        con.close()


class WarehouseSettings(Protocol):
    """What `connect_warehouse` needs of the config's warehouse section."""

    path: str
    lock_timeout_s: float


# One warehouse burst at a time per process (a RowWriter's flush, a cache lookup, a step's
# query): the first burst on a file migrates it, and the writer's checkpoint needs no other
# transaction running. Re-entrant: a burst may open the file again in the same thread.
PROCESS_LOCK = threading.RLock()


@contextmanager
def connect_warehouse(
    settings: WarehouseSettings, *, read_only: bool = False
) -> Iterator[duckdb.DuckDBPyConnection]:
    """The one way to open the configured warehouse. The DuckDB file: a short burst, one at a
    time in this process, waiting up to the configured lock timeout for other processes. A
    DuckLake (`warehouse.backend: ducklake`): a cursor on the attached lake, no lock at all
    (warehouse/lake.py)."""
    if getattr(settings, "backend", "duckdb") == "ducklake":
        from flywheel.warehouse.lake import connect_lake

        with connect_lake(settings, read_only=read_only) as con:  # type: ignore[arg-type]
            yield con
        return
    with (
        PROCESS_LOCK,
        connect(settings.path, read_only=read_only, timeout_s=settings.lock_timeout_s) as con,
    ):
        yield con


_open_transactions: set[int] = set()  # id() of the connections inside `transaction`


def in_transaction(con: duckdb.DuckDBPyConnection) -> bool:
    """Whether `con` is inside a `transaction(con)` block."""
    return id(con) in _open_transactions


@contextmanager
def transaction(con: duckdb.DuckDBPyConnection) -> Iterator[duckdb.DuckDBPyConnection]:
    """All writes inside land together or not at all. On a DuckLake, one write transaction
    at a time in this process (warehouse/lake.py WRITE_LOCK)."""
    from flywheel.warehouse.lake import WRITE_LOCK, is_lake_connection

    with WRITE_LOCK if is_lake_connection(con) else nullcontext():
        yield from _transaction(con)


def _transaction(con: duckdb.DuckDBPyConnection) -> Iterator[duckdb.DuckDBPyConnection]:
    con.execute("begin transaction")
    _open_transactions.add(id(con))
    try:
        try:
            yield con
        except BaseException:
            con.execute("rollback")
            raise
        try:
            con.execute("commit")
        except duckdb.Error:
            with suppress(duckdb.Error):  # a failed commit may leave the transaction open
                con.execute("rollback")
            raise
    finally:
        _open_transactions.discard(id(con))


@contextmanager
def registered(con: duckdb.DuckDBPyConnection, name: str, frame: pd.DataFrame) -> Iterator[None]:
    """`frame` readable as the view `name` inside the block."""
    con.register(name, frame)
    try:
        yield
    finally:
        con.unregister(name)
