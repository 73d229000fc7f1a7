"""Backups of the DuckDB warehouse file: `flywheel warehouse backup DIR`, `flywheel warehouse
restore DIR`, and the automatic backup before each round (`warehouse.backup_before_round: N`).

A backup is a folder holding `warehouse.duckdb`, a copy of the file, and `backup.json` (the
source, the time, the round, and every table's row count). The copy is taken with the file
open read-write (so no other process can write meanwhile) right after a CHECKPOINT (so the
file holds every committed row and the write-ahead log is empty). It is written into
`DIR.partial`, verified (every block in use reads, every table has as many rows as the source)
and only then renamed to DIR, so a folder named DIR is always a whole, verified backup.

A file copy rather than DuckDB's EXPORT DATABASE: it is exact (same schema, views, schema
version, and the same answers to every query), it costs a file copy (EXPORT rewrites every
table as CSV or Parquet, and its IMPORT rebuilds them), and a restore is a rename. Its limit:
a backup is read by this DuckDB storage version or a newer one, like the warehouse itself.

The callers hold the run lock (flows/run_lock.py): the CLI around `write_backup` and
`restore_backup`, the flow around `backup_before_round`.
"""

from __future__ import annotations

import fcntl
import json
import os
import re
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path

import duckdb

from flywheel.errors import InputError
from flywheel.warehouse.integrity import describe_read_error, find_damage, is_damage_error
from flywheel.warehouse.store import PROCESS_LOCK, connect, now_utc

BACKUP_FILE = "warehouse.duckdb"
MANIFEST_FILE = "backup.json"
PARTIAL_SUFFIX = ".partial"
_TIME_FORMAT = "%Y%m%dT%H%M%SZ"


class BackupError(InputError):
    """A backup or restore refused before anything was written (exit 2)."""


class BackupVerificationError(RuntimeError):
    """The copy does not read back as its source (a block, or a table's row count)."""


@dataclass(frozen=True)
class BackupReport:
    """One backup written and verified, or one restored."""

    action: str  # "backed up" or "restored"
    warehouse: str
    directory: str
    rows: dict[str, int] = field(default_factory=dict)
    n_bytes: int = 0
    seconds: float = 0.0
    kept_aside: str | None = None  # restore: where the replaced file went

    def summary(self) -> str:
        what = (
            f"{self.action} {self.warehouse} {'to' if self.action == 'backed up' else 'from'} "
            f"{self.directory}: {len(self.rows)} tables, {sum(self.rows.values())} rows, "
            f"{self.n_bytes / 1e6:.1f} MB in {self.seconds:.2f} s; row counts verified"
        )
        aside = "" if self.kept_aside is None else f"; the old file is kept as {self.kept_aside}"
        return what + aside


def table_rows(con: duckdb.DuckDBPyConnection) -> dict[str, int]:
    """Rows in every table of the open database (views left out), by table name."""
    names = con.execute(
        "select table_name from duckdb_tables() where database_name = current_database() "
        "and schema_name = 'main' and not temporary order by table_name"
    ).fetchall()
    return {name: con.execute(f'select count(*) from "{name}"').fetchone()[0] for (name,) in names}


def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def verify_copy(copy: Path, expected_rows: dict[str, int]) -> None:
    """Reopen `copy` read-only: every block in use must read and every table hold the rows
    expected; raise BackupVerificationError otherwise."""
    try:
        with duckdb.connect(str(copy), read_only=True) as con:
            problem = find_damage(con, copy)
            rows = table_rows(con) if problem is None else {}
    except duckdb.Error as e:  # damaged where DuckDB reads on open
        if not is_damage_error(e):
            raise
        problem, rows = describe_read_error(e, copy), {}
    if problem is None and rows != expected_rows:
        tables = sorted(set(rows) | set(expected_rows))
        differ = [t for t in tables if rows.get(t) != expected_rows.get(t)]
        problem = "row counts differ in " + ", ".join(
            f"{t} ({rows.get(t, 0)} of {expected_rows.get(t, 0)})" for t in differ
        )
    if problem is not None:
        raise BackupVerificationError(f"the copy {copy} does not read back whole: {problem}")


def _copy_checkpointed(warehouse_path: str, partial: Path, timeout_s: float) -> dict[str, int]:
    """Open the file read-write (the integrity check runs on open; no other process can write
    while it is open), checkpoint, count every table's rows and copy the file into `partial`."""
    with PROCESS_LOCK, connect(warehouse_path, timeout_s=timeout_s) as con:
        con.execute("checkpoint")
        rows = table_rows(con)
        shutil.rmtree(partial, ignore_errors=True)  # an earlier attempt that stopped half-way
        partial.mkdir(parents=True)
        shutil.copyfile(warehouse_path, partial / BACKUP_FILE)
    _fsync(partial / BACKUP_FILE)
    return rows


def write_backup(
    warehouse_path: str,
    directory: str | Path,
    round_id: int | None = None,
    timeout_s: float = 120.0,
) -> BackupReport:
    """Copy the warehouse file into the new folder `directory`, verified (see module doc)."""
    started = time.monotonic()
    target = Path(directory)
    if not Path(warehouse_path).is_file():
        raise BackupError(
            f"there is no warehouse file at {warehouse_path} to back up. Fix: check "
            "warehouse.path in the config (--config)."
        )
    if target.exists() and (not target.is_dir() or any(target.iterdir())):
        raise BackupError(
            f"{target} already exists and is not an empty folder; a backup never overwrites. "
            "Fix: name a new folder."
        )
    partial = target.with_name(target.name + PARTIAL_SUFFIX)
    try:
        rows = _copy_checkpointed(warehouse_path, partial, timeout_s)
        verify_copy(partial / BACKUP_FILE, rows)
    except BaseException:
        shutil.rmtree(partial, ignore_errors=True)  # our own unfinished copy, never the source
        raise
    manifest = {
        "source": str(Path(warehouse_path).resolve()),
        "created_at": f"{now_utc():%Y-%m-%d %H:%M:%S} UTC",
        "round_id": round_id,
        "duckdb_version": duckdb.__version__,
        "rows": rows,
    }
    (partial / MANIFEST_FILE).write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")
    if target.exists():
        target.rmdir()  # empty, checked above
    os.replace(partial, target)
    n_bytes = (target / BACKUP_FILE).stat().st_size
    seconds = time.monotonic() - started
    return BackupReport("backed up", warehouse_path, str(target), rows, n_bytes, seconds)


def read_manifest(directory: str | Path) -> dict:
    """The backup's manifest; BackupError when `directory` is not a whole backup."""
    folder = Path(directory)
    manifest, copy = folder / MANIFEST_FILE, folder / BACKUP_FILE
    if not manifest.is_file() or not copy.is_file():
        raise BackupError(
            f"{folder} is not a flywheel backup (it needs {BACKUP_FILE} and {MANIFEST_FILE}). "
            "Fix: name a folder written by `flywheel warehouse backup` or "
            "warehouse.backup_before_round."
        )
    try:
        return json.loads(manifest.read_text(encoding="utf-8"))
    except (OSError, ValueError) as e:
        raise BackupError(f"{manifest} cannot be read ({e}). Fix: name another backup.") from e


def _refuse_if_open(warehouse_path: str) -> None:
    """BackupError when another process has the file open (DuckDB holds a lock on it).
    The probe's lock is released at once; an open file of this process is not detected."""
    try:
        with open(warehouse_path, "r+b") as probe:
            fcntl.lockf(probe, fcntl.LOCK_EX | fcntl.LOCK_NB)
            fcntl.lockf(probe, fcntl.LOCK_UN)
    except BlockingIOError:
        raise BackupError(
            f"another process has the warehouse {warehouse_path} open (a `flywheel sql`, an "
            "analyst's DuckDB shell). Fix: close it, then restore again."
        ) from None


def _move_aside(warehouse_path: str) -> Path:
    """Rename the file (and its write-ahead log) to `<stem>.replaced-<UTC time><suffix>`."""
    path = Path(warehouse_path)
    name, n = f"{path.stem}.replaced-{now_utc():{_TIME_FORMAT}}", 1
    aside = path.with_name(name + path.suffix)
    while aside.exists():  # two restores within a second: keep both old files
        n += 1
        aside = path.with_name(f"{name}-{n}{path.suffix}")
    os.replace(path, aside)
    wal = Path(f"{warehouse_path}.wal")
    if wal.exists():  # it belongs to the old file: replayed onto the restored one it would harm
        os.replace(wal, Path(f"{aside}.wal"))
    return aside


def restore_backup(warehouse_path: str, directory: str | Path) -> BackupReport:
    """Bring the backup in `directory` back as the warehouse file, after verifying it; the
    file it replaces is renamed aside, never deleted (see `_move_aside`)."""
    started = time.monotonic()
    rows = read_manifest(directory).get("rows")
    if not isinstance(rows, dict):
        raise BackupError(
            f"{directory}/{MANIFEST_FILE} lists no row counts. Fix: name another backup."
        )
    backup = Path(directory) / BACKUP_FILE
    try:
        verify_copy(backup, rows)
    except BackupVerificationError as e:
        raise BackupError(
            f"{e}. Fix: restore another backup; the warehouse was left untouched."
        ) from e
    target = Path(warehouse_path)
    if target.is_file():
        _refuse_if_open(warehouse_path)
    staging = target.with_name(target.name + ".restoring")
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(backup, staging)
    _fsync(staging)
    aside = _move_aside(warehouse_path) if target.exists() else None
    os.replace(staging, target)
    verify_copy(target, rows)
    n_bytes = target.stat().st_size
    seconds = time.monotonic() - started
    kept = None if aside is None else str(aside)
    return BackupReport("restored", warehouse_path, str(directory), rows, n_bytes, seconds, kept)


def default_backup_dir(warehouse_path: str) -> Path:
    """`<warehouse folder>/backups`, where automatic backups go unless warehouse.backup_dir."""
    return Path(warehouse_path).parent / "backups"


def _round_backup_pattern(warehouse_path: str) -> re.Pattern[str]:
    stem = re.escape(Path(warehouse_path).stem)
    return re.compile(rf"^{stem}-\d{{8}}T\d{{6}}Z-before-round-\d+(-\d+)?$")


def round_backups(warehouse_path: str, folder: Path) -> list[Path]:
    """The whole automatic backups of this warehouse in `folder`, oldest first (by name: the
    UTC time leads)."""
    pattern = _round_backup_pattern(warehouse_path)
    if not folder.is_dir():
        return []
    found = [p for p in folder.iterdir() if pattern.match(p.name) and (p / MANIFEST_FILE).is_file()]
    return sorted(found, key=lambda p: p.name)


def rotate_backups(warehouse_path: str, folder: Path, keep: int) -> list[Path]:
    """Delete this warehouse's automatic backups beyond the newest `keep`, and the `.partial`
    folders of attempts that stopped half-way; return what was deleted. Nothing else in
    `folder` is touched."""
    pattern = _round_backup_pattern(warehouse_path)
    backups = round_backups(warehouse_path, folder)
    stale = [
        p
        for p in folder.iterdir()
        if p.name.endswith(PARTIAL_SUFFIX) and pattern.match(p.name.removesuffix(PARTIAL_SUFFIX))
    ]
    deleted = backups[: max(0, len(backups) - keep)] + stale
    for old in deleted:
        shutil.rmtree(old)
    return deleted


def backup_before_round(
    warehouse_path: str,
    keep: int,
    round_id: int,
    backup_dir: str | None = None,
    timeout_s: float = 120.0,
) -> BackupReport | None:
    """Before round `round_id`: back the warehouse up into `backup_dir` (default
    `<warehouse folder>/backups`) as `<stem>-<UTC time>-before-round-<N>`, then keep the newest
    `keep` such backups. Nothing when `keep` is 0 or the file does not exist yet. The caller
    holds the run lock."""
    if keep <= 0 or not Path(warehouse_path).is_file():
        return None
    folder = Path(backup_dir) if backup_dir else default_backup_dir(warehouse_path)
    name = f"{Path(warehouse_path).stem}-{now_utc():{_TIME_FORMAT}}-before-round-{round_id}"
    target, n = folder / name, 1
    while target.exists():  # two backups of one round within a second
        n += 1
        target = folder / f"{name}-{n}"
    report = write_backup(warehouse_path, target, round_id, timeout_s)
    rotate_backups(warehouse_path, folder, keep)
    return report
